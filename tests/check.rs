//! `dmb check` and `dmb inspect` on real modules: the kit kernel's own
//! 4000-odd modules, a module `dmb build` made, and a tree of another
//! kernel release.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;

/// The kit kernel's header tree and module tree, unpacked once per kernel
/// into cargo's scratch directory (reused by later runs, never leaked).
struct Unpacked {
    headers: PathBuf,
    modules: PathBuf,
}

fn unpack(image: &str, tar_path: &str, into: &Path) {
    let id = docker_ok(&["create", image, "/none"]).trim().to_string();
    let out = Command::new("docker")
        .args(["cp", &format!("{id}:{tar_path}"), "-"])
        .output()
        .unwrap();
    docker_ok(&["rm", &id]);
    assert!(
        out.status.success(),
        "docker cp {tar_path}: {}",
        stderr(&out)
    );
    let mut outer = tar::Archive::new(&out.stdout[..]);
    let inner = outer.entries().unwrap().next().unwrap().unwrap();
    let mut archive = tar::Archive::new(inner);
    archive.set_preserve_permissions(false);
    archive.unpack(into).unwrap();
}

fn kit_trees() -> &'static Unpacked {
    static TREES: OnceLock<Unpacked> = OnceLock::new();
    TREES.get_or_init(|| {
        let kit = kit();
        let id = docker_ok(&["image", "inspect", "--format", "{{.Id}}", &kit.kernel_ref]);
        let id = id.trim().trim_start_matches("sha256:");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kit-trees-{}", &id[..12]));
        if !dir.join("complete").exists() {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let _engine = engine_lock();
            unpack(&kit.kernel_ref, "/kernel-dev.tar", &dir);
            unpack(&kit.kernel_ref, "/kernel.tar", &dir);
            std::fs::write(dir.join("complete"), "").unwrap();
        }
        Unpacked {
            headers: dir.join(format!("usr/src/linux-headers-{}", kit.kver)),
            modules: dir.join(format!("lib/modules/{}", kit.kver)),
        }
    })
}

fn dmb_plain() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dmb"));
    cmd.env("DMB_CACHE_DIR", cache_dir()).current_dir(root());
    cmd
}

#[test]
fn every_module_of_the_kit_kernel_fits_its_own_kernel() {
    let t = kit_trees();
    let count = sources_count(&t.modules);
    assert!(count > 1000, "only {count} modules in the kit's tree");
    let out = dmb_plain()
        .args(["check", "--kernel-dir"])
        .arg(&t.headers)
        .arg("--modules-dir")
        .arg(&t.modules)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(
        text.contains(&format!(
            "{count} module(s) checked against {}: all fit",
            kit().kver
        )),
        "{text}"
    );
}

fn sources_count(dir: &Path) -> usize {
    dmb::module_files::files_under(dir).unwrap().len()
}

/// One CRC changed in one module of a copy of the tree: exactly that module
/// and that symbol are reported.
#[test]
fn one_changed_crc_is_found_among_thousands() {
    let t = kit_trees();
    let copy = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(&t.modules)
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    let tree = copy.path().join(t.modules.file_name().unwrap());
    let victim = tree.join("kernel/net/sctp/sctp.ko");
    let mut bytes = std::fs::read(&victim).unwrap();
    let module = dmb::ko::Module::read("sctp.ko", bytes.clone()).unwrap();
    let target = &module.versions[3];
    // The record is the CRC (8 bytes) then the NUL-terminated name.
    let name = format!("\0{}\0", target.symbol);
    let at = bytes
        .windows(name.len())
        .position(|w| w == name.as_bytes())
        .unwrap()
        + 1
        - 8;
    assert_eq!(
        u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()),
        target.crc as u64
    );
    bytes[at..at + 8].copy_from_slice(&0x0bad_c0deu64.to_le_bytes());
    std::fs::write(&victim, bytes).unwrap();

    let out = dmb_plain()
        .args(["check", "--json", "--kernel-dir"])
        .arg(&t.headers)
        .arg("--modules-dir")
        .arg(&tree)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(50), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let misfits: Vec<&serde_json::Value> = report["modules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["fits"] == false)
        .collect();
    assert_eq!(misfits.len(), 1, "{misfits:#?}");
    assert_eq!(misfits[0]["file"], "kernel/net/sctp/sctp.ko");
    assert_eq!(
        misfits[0]["misfits"],
        serde_json::json!([{
            "kind": "crc",
            "symbol": target.symbol,
            "expected": format!("0x{:08x}", target.crc),
            "found": "0x0badc0de",
            "provider": "vmlinux",
        }])
    );
}

/// A module `dmb build` made for the kit, checked against the headers of
/// another Debian kernel release.
#[test]
fn a_module_for_the_kit_does_not_fit_another_release() {
    let kit = kit();
    let other = Command::new("bash")
        .arg(root().join("scripts/kit.sh"))
        .arg("--other-headers")
        .output()
        .unwrap();
    assert!(other.status.success(), "{}", stderr(&other));
    let other_dir = PathBuf::from(String::from_utf8(other.stdout).unwrap().trim());
    let other_release = other_dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("linux-headers-")
        .to_string();
    assert_ne!(other_release, kit.kver);

    let out_dir = tempfile::tempdir().unwrap();
    let image = TestImage::new("check");
    {
        let _engine = engine_lock();
        let built = dmb(BUILDKIT)
            .args([
                "build",
                "examples/hello",
                "-q",
                "--module-ref",
                image.name(),
                "--output",
            ])
            .arg(out_dir.path())
            .output()
            .unwrap();
        assert!(built.status.success(), "{}", stderr(&built));
    }
    let ko = out_dir.path().join("hello.ko");
    let fits = dmb_plain()
        .args(["check", "--kernel-ref", &kit.kernel_ref])
        .arg(&ko)
        .output()
        .unwrap();
    assert_eq!(
        fits.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&fits.stdout)
    );

    let out = dmb_plain()
        .args(["check", "--kernel-dir"])
        .arg(&other_dir)
        .arg(&ko)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(50), "{text}");
    assert!(text.contains("hello.ko (hello): will NOT load"), "{text}");
    assert!(
        text.contains(&format!(
            "vermagic \"{} SMP preempt mod_unload modversions \" but the kernel wants \"{other_release} SMP preempt mod_unload modversions \"",
            kit.kver
        )),
        "{text}"
    );
    assert!(text.contains("hint: built against other headers"), "{text}");

    // The image works as input too.
    let from_image = dmb_plain()
        .args(["check", "--kernel-dir"])
        .arg(&other_dir)
        .arg(image.name())
        .output()
        .unwrap();
    assert_eq!(
        from_image.status.code(),
        Some(50),
        "{}",
        stderr(&from_image)
    );
}

#[test]
fn inspect_reads_real_modules_plain_and_compressed() {
    let t = kit_trees();
    let sctp = t.modules.join("kernel/net/sctp/sctp.ko");
    let dir = tempfile::tempdir().unwrap();
    let xz = dir.path().join("sctp.ko.xz");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("xz -c {} > {}", sctp.display(), xz.display()))
        .status()
        .unwrap();
    assert!(status.success());
    let out = dmb_plain()
        .args(["inspect", "--json"])
        .arg(&sctp)
        .arg(&xz)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for m in v.as_array().unwrap() {
        assert_eq!(m["name"], "sctp");
        assert!(m["vermagic"].as_str().unwrap().starts_with(&kit().kver));
        assert_eq!(
            m["elf"],
            serde_json::json!({"class": 64, "machine": "x86_64", "little_endian": true})
        );
        assert!(m["depends"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("libcrc32c")));
        assert!(m["versions"].as_array().unwrap().len() > 100);
        assert!(m["exports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["symbol"] == "sctp_do_peeloff"));
        assert!(m["aliases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "net-pf-10-proto-132"));
    }
    assert_eq!(v[0]["versions"], v[1]["versions"]);
}

#[test]
fn a_file_that_is_not_a_module() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.ko");
    std::fs::write(&bogus, b"\x7fELF but not really").unwrap();
    let out = dmb_plain().arg("inspect").arg(&bogus).output().unwrap();
    assert_eq!(out.status.code(), Some(51));
    assert!(
        stderr(&out).contains("not an ELF object"),
        "{}",
        stderr(&out)
    );
}

/// A module signed by the kernel's own `scripts/sign-file` (from the kit's
/// headers, run in the kit's builder) with a fresh key: inspect names the
/// signer, the key and the hash; a kernel that forces signatures accepts it
/// and refuses the same module unsigned.
#[test]
fn a_module_signed_by_sign_file() {
    let kit = kit();
    let t = kit_trees();
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path();
    let openssl = Command::new("openssl")
        .args([
            "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=dmb test signing key", "-keyout"])
        .arg(w.join("key.pem"))
        .arg("-out")
        .arg(w.join("cert.pem"))
        .output()
        .expect("openssl");
    assert!(openssl.status.success(), "{}", stderr(&openssl));
    let serial = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(w.join("cert.pem"))
        .output()
        .unwrap();
    let serial = String::from_utf8(serial.stdout).unwrap();
    let serial = serial
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase();
    // Debian signs its modules with the key of each kernel build.
    let original = t.modules.join("kernel/lib/libcrc32c.ko");
    let out = dmb_plain()
        .args(["inspect", "--json"])
        .arg(&original)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v[0]["signature"]["signer"],
        "Build time autogenerated kernel key"
    );
    assert_eq!(v[0]["signature"]["hash_algorithm"], "sha256");
    // Its ELF part alone: the signature and its trailer cut off.
    let bytes = std::fs::read(&original).unwrap();
    let magic = b"~Module signature appended~\n";
    let body = &bytes[..bytes.len() - magic.len()];
    let sig_len = u32::from_be_bytes(body[body.len() - 4..].try_into().unwrap()) as usize;
    let unsigned = w.join("unsigned.ko");
    std::fs::write(&unsigned, &body[..body.len() - 12 - sig_len]).unwrap();
    std::fs::copy(&unsigned, w.join("m.ko")).unwrap();

    // sign-file is a binary of Debian's linux-kbuild, which kernel-dev.tar
    // carries; it runs in the builder, with no network.
    let kbuild = t.headers.join("scripts").canonicalize().unwrap();
    let kbuild_root = kbuild.parent().unwrap();
    let in_container = format!(
        "/usr/lib/{}",
        kbuild_root.file_name().unwrap().to_string_lossy()
    );
    let mount = |from: &Path, to: &str| format!("{}:{to}", from.display());
    let out = {
        let _engine = engine_lock();
        Command::new("docker")
            .args([
                "run",
                "--rm",
                "--network",
                "none",
                "-v",
                &mount(w, "/w"),
                "-v",
            ])
            .arg(mount(kbuild_root, &in_container))
            .arg(&kit.build_ref)
            .arg(format!("{in_container}/scripts/sign-file"))
            .args(["sha256", "/w/key.pem", "/w/cert.pem", "/w/m.ko"])
            .output()
            .unwrap()
    };
    assert!(out.status.success(), "sign-file: {}", stderr(&out));

    let out = dmb_plain()
        .args(["inspect", "--json"])
        .arg(w.join("m.ko"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sig = &v[0]["signature"];
    assert_eq!(sig["format"], "pkcs7");
    assert_eq!(sig["signer"], "dmb test signing key");
    assert_eq!(sig["hash_algorithm"], "sha256");
    assert_eq!(sig["key_id"], serial.as_str());
    assert_eq!(v[0]["name"], "libcrc32c");

    // The kit's tree with CONFIG_MODULE_SIG_FORCE switched on.
    let forced = w.join("forced");
    std::fs::create_dir_all(forced.join("include/generated")).unwrap();
    let config = std::fs::read_to_string(t.headers.join(".config")).unwrap();
    std::fs::write(
        forced.join(".config"),
        config.replace(
            "# CONFIG_MODULE_SIG_FORCE is not set",
            "CONFIG_MODULE_SIG_FORCE=y",
        ),
    )
    .unwrap();
    for f in ["Module.symvers", "include/generated/utsrelease.h"] {
        std::fs::copy(t.headers.join(f), forced.join(f)).unwrap();
    }
    let signed = dmb_plain()
        .args(["check", "--kernel-dir"])
        .arg(&forced)
        .arg(w.join("m.ko"))
        .output()
        .unwrap();
    assert_eq!(
        signed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&signed.stdout)
    );
    let bare = dmb_plain()
        .args(["check", "--kernel-dir"])
        .arg(&forced)
        .arg(&unsigned)
        .output()
        .unwrap();
    assert_eq!(bare.status.code(), Some(50));
    assert!(
        String::from_utf8_lossy(&bare.stdout)
            .contains("unsigned, and the kernel enforces module signatures"),
        "{}",
        String::from_utf8_lossy(&bare.stdout)
    );
}

/// `dmb inspect` and `dmb check` as a user runs them (no DMB_* variable):
/// one of the kit kernel's own modules, read and checked against its
/// headers, in JSON.
#[test]
fn inspect_and_check_with_defaults() {
    let t = kit_trees();
    let ko = dmb::module_files::files_under(&t.modules)
        .unwrap()
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with("/fs/fat/vfat.ko"))
        .expect("vfat.ko in the kit's tree");
    let cache = tempfile::tempdir().unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let out = user_dmb()
            .env("XDG_CACHE_HOME", cache.path())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let inspected = run(&["inspect".as_ref(), "--json".as_ref(), ko.as_os_str()]);
    let first = &inspected[0];
    assert_eq!(first["name"], "vfat", "{inspected}");
    assert!(
        first["vermagic"].as_str().unwrap().starts_with(&kit().kver),
        "{inspected}"
    );
    let checked = run(&[
        "check".as_ref(),
        "--json".as_ref(),
        "--kernel-dir".as_ref(),
        t.headers.as_os_str(),
        ko.as_os_str(),
    ]);
    assert_eq!(checked["kernel_release"], kit().kver.as_str(), "{checked}");
    assert_eq!(checked["modules"][0]["fits"], true, "{checked}");
}
