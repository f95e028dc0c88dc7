//! `dmb load`, `dmb unload` and `dmb status` against the desktop-sim: a VM
//! of the test's own whose kernel is the kit's. Every insmod happens in
//! that VM; this machine's engine only builds the test modules.
//!
//! One test walks it all, in one VM (minutes under TCG): a module with a
//! parameter; a pair where one uses the other's export (load the dependent
//! one, both load in order; the used one cannot be unloaded first; unload
//! takes both); a dependency only the VM has (`crc7`), checked with the
//! CRCs of the VM's installed modules; a module built for another kernel
//! (refused before insmod, nothing loaded); a load that fails at the second
//! module (nothing left loaded, the kernel's words reported); `--persist`
//! across a VM restart, and `unload --persist` across another.

mod common;

use common::sim::*;
use common::*;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const LOAD: Duration = Duration::from_secs(5 * 60);

fn dmb_vm_run(host: &str, args: &[&str]) -> Output {
    run(dmb_vm(host, args), LOAD, &format!("dmb {}", args.join(" ")))
}

fn dmb_vm_ok(host: &str, args: &[&str]) -> String {
    run_ok(dmb_vm(host, args), LOAD, &format!("dmb {}", args.join(" ")))
}

fn status(host: &str) -> serde_json::Value {
    serde_json::from_str(&dmb_vm_ok(host, &["status", "--json"])).unwrap()
}

/// Names of the loader containers in the VM's engine.
fn loaders(host: &str) -> Vec<String> {
    vm_docker_ok(
        host,
        &[
            "ps",
            "--all",
            "--filter",
            "label=dmb.loader",
            "--format",
            "{{.Names}}",
        ],
        MIN,
    )
    .lines()
    .map(str::to_string)
    .collect()
}

fn sysfs(host: &str, path: &str) -> String {
    vm_docker_ok(host, &["run", "--rm", BUSYBOX, "cat", path], MIN)
        .trim()
        .to_string()
}

fn users_of(host: &str, module: &str) -> String {
    vm_docker_ok(host, &["run", "--rm", BUSYBOX, "cat", "/proc/modules"], MIN)
        .lines()
        .find(|l| l.split_whitespace().next() == Some(module))
        .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        .unwrap_or_else(|| panic!("{module} is not loaded"))
}

fn assert_none_loaded(host: &str, modules: &[&str], when: &str) {
    let loaded = loaded_modules(host);
    for m in modules {
        assert!(
            !loaded.iter().any(|l| l == m),
            "{when}: {m} is loaded: {loaded:?}"
        );
    }
}

fn assert_all_loaded(host: &str, modules: &[&str], when: &str) {
    let loaded = loaded_modules(host);
    for m in modules {
        assert!(
            loaded.iter().any(|l| l == m),
            "{when}: {m} is not loaded: {loaded:?}"
        );
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn modules_load_in_order_persist_across_restarts_and_unload() {
    if !sim_available("the load test") {
        return;
    }
    let _kit = kit();
    // Test modules, built on this machine's engine (never loaded here).
    let out = tempfile::tempdir().unwrap();
    let images: Vec<TestImage> = (0..5).map(|_| TestImage::new("load")).collect();
    let hello = build_module("examples/hello", out.path(), &images[0], None).join("hello.ko");
    let pair = build_module("tests/modules/dependent-pair", out.path(), &images[1], None);
    let fails = build_module("tests/modules/fails-second", out.path(), &images[2], None);
    let crc7_user = build_module("tests/modules/uses-vm-module", out.path(), &images[3], None)
        .join("dmb_crc7_user.ko");
    let other_kernel = run_ok(
        {
            let mut c = Command::new("bash");
            c.arg(root().join("scripts/kit.sh")).arg("--other-kernel");
            c
        },
        10 * MIN,
        "scripts/kit.sh --other-kernel",
    );
    let other_ref = other_kernel
        .trim()
        .strip_prefix("KERNEL_REF=")
        .expect("KERNEL_REF=")
        .to_string();
    let other_dir = out.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other_hello =
        build_module("examples/hello", &other_dir, &images[4], Some(&other_ref)).join("hello.ko");
    let path = |p: &Path| p.to_str().unwrap().to_string();

    let sim = Sim::new();
    let host = sim.start("up", UP_COLD);
    assert!(loaders(&host).is_empty());

    // hello, with a parameter; a second load is a no-op. The kernel
    // image's facts are read once, then come from the cache.
    let first = dmb_vm_run(
        &host,
        &["load", "-v", &path(&hello), "--param", "hello.greeting=sim"],
    );
    assert!(first.status.success(), "{}", text(&first));
    let said = String::from_utf8_lossy(&first.stdout);
    assert!(
        said.contains("hello") && said.contains("inserted"),
        "{said}"
    );
    assert!(
        stderr(&first).contains(":/kernel-dev.tar"),
        "{}",
        text(&first)
    );
    assert_eq!(sysfs(&host, "/sys/module/hello/parameters/greeting"), "sim");
    let again = dmb_vm_run(&host, &["load", "-v", &path(&hello)]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        !stderr(&again).contains(":/kernel-dev.tar"),
        "{}",
        text(&again)
    );
    let again = String::from_utf8_lossy(&again.stdout);
    assert!(again.contains("already loaded (this build)"), "{again}");
    // Another build of a loaded module is an error, even unchecked.
    let other = dmb_vm_run(&host, &["load", "--no-check", &path(&other_hello)]);
    assert_eq!(other.status.code(), Some(60), "{}", text(&other));
    assert!(
        stderr(&other).contains("another build of hello is loaded already"),
        "{}",
        text(&other)
    );
    let s = status(&host);
    assert_eq!(s["modules"][0]["name"], "hello");
    assert_eq!(s["modules"][0]["loaded"], true);
    assert_eq!(s["modules"][0]["same_build"], true);
    assert_eq!(s["modules"][0]["params"][0], "greeting=sim");
    dmb_vm_ok(&host, &["unload", "hello"]);
    assert_none_loaded(&host, &["hello"], "after unload");
    assert!(loaders(&host).is_empty(), "{:?}", loaders(&host));

    // A value with spaces, quotes and shell metacharacters reaches the
    // kernel as given (dmb quotes it for the kernel's parser; no shell runs
    // it); one the kernel cannot take (a double quote) is refused before
    // anything is loaded.
    let value = "a $(touch /x) b;c 'd' `e` | f";
    let odd = dmb_vm_run(
        &host,
        &[
            "load",
            &path(&hello),
            "--param",
            &format!("hello.greeting={value}"),
        ],
    );
    assert!(odd.status.success(), "{}", text(&odd));
    assert_eq!(sysfs(&host, "/sys/module/hello/parameters/greeting"), value);
    dmb_vm_ok(&host, &["unload", "hello"]);
    let quoted = dmb_vm_run(
        &host,
        &[
            "load",
            &path(&hello),
            "--param",
            "hello.greeting=say \"hi\"",
        ],
    );
    assert_eq!(quoted.status.code(), Some(2), "{}", text(&quoted));
    assert!(
        stderr(&quoted).contains("double quote"),
        "{}",
        text(&quoted)
    );
    assert_none_loaded(&host, &["hello"], "after a refused parameter");

    // The dependent one: its provider (beside it) loads first. -v shows
    // every engine command, and why a container enters the VM.
    let consumer = path(&pair.join("dmb_consumer.ko"));
    let dry = dmb_vm_ok(&host, &["load", "--dry-run", &consumer]);
    assert!(dry.contains("would load"), "{dry}");
    assert_none_loaded(&host, &["dmb_provider", "dmb_consumer"], "after --dry-run");
    let verbose = dmb_vm_run(
        &host,
        &[
            "load",
            "-v",
            "--json",
            &consumer,
            "--param",
            "dmb_provider.answer=7",
        ],
    );
    assert!(verbose.status.success(), "{}", text(&verbose));
    let outcome: serde_json::Value = serde_json::from_slice(&verbose.stdout).unwrap();
    let order: Vec<&str> = outcome["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["module"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["dmb_provider", "dmb_consumer"]);
    assert_eq!(
        outcome["inserted"],
        serde_json::json!(["dmb_provider", "dmb_consumer"])
    );
    let trace = stderr(&verbose);
    let lines: Vec<&str> = trace.lines().collect();
    let mut inserting = 0;
    for (i, l) in lines.iter().enumerate() {
        // No container is ever privileged; the one that enters the VM to
        // read its files says why, and never loads.
        assert!(!l.contains("--privileged"), "{l}");
        if l.contains("--cap-add SYS_ADMIN") {
            assert!(
                i > 0 && lines[i - 1].starts_with("dmb: a container in the VM's PID namespace"),
                "a container entering the VM without a reason:\n{trace}"
            );
            assert!(!l.contains("SYS_MODULE"), "{l}");
        }
        if l.contains("--cap-add SYS_MODULE") {
            inserting += 1;
            assert!(
                l.contains("--network none") && !l.contains("SYS_ADMIN") && !l.contains("--pid"),
                "{l}"
            );
        }
    }
    assert!(inserting >= 1, "no CAP_SYS_MODULE container in:\n{trace}");
    assert_eq!(users_of(&host, "dmb_provider"), "dmb_consumer,");
    assert_eq!(
        sysfs(&host, "/sys/module/dmb_provider/parameters/answer"),
        "7"
    );
    // Checked against the installed modules' CRCs, the consumer imports a
    // symbol none of them records (dmb_provider, loaded, exports it): that
    // is said, not silently accepted, after all the modules were read.
    let said = dmb_vm_ok(
        &host,
        &[
            "load",
            "--dry-run",
            "--crcs",
            "installed-modules",
            &consumer,
        ],
    );
    assert!(
        said.contains("unverified: dmb_consumer imports dmb_provider_answer"),
        "{said}"
    );
    assert!(said.contains("installed modules (all)"), "{said}");
    let s = status(&host);
    let listed: Vec<&str> = s["modules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["loaded"] == true)
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["dmb_provider", "dmb_consumer"]);
    let refused = dmb_vm_run(&host, &["unload", "dmb_provider"]);
    assert_eq!(refused.status.code(), Some(63), "{}", text(&refused));
    assert!(
        stderr(&refused).contains("in use by dmb_consumer"),
        "{}",
        text(&refused)
    );
    let gone = dmb_vm_ok(&host, &["unload", "dmb_consumer"]);
    assert!(
        gone.contains("unloaded: dmb_consumer, dmb_provider"),
        "{gone}"
    );
    assert_none_loaded(&host, &["dmb_provider", "dmb_consumer"], "after unload");

    // A dependency only the VM has, checked against the CRCs its installed
    // modules record (no Module.symvers).
    let said = dmb_vm_ok(
        &host,
        &["load", "--crcs", "installed-modules", &path(&crc7_user)],
    );
    assert!(said.contains("the VM's /lib/modules/"), "{said}");
    assert!(said.contains("installed modules"), "{said}");
    assert_all_loaded(&host, &["crc7", "dmb_crc7_user"], "after load");
    dmb_vm_ok(&host, &["unload", "dmb_crc7_user"]);
    assert_none_loaded(&host, &["crc7", "dmb_crc7_user"], "after unload");

    // Built for another kernel: refused before any insmod, with both CRC
    // sources.
    for crcs in ["auto", "installed-modules"] {
        let refused = dmb_vm_run(&host, &["load", "--crcs", crcs, &path(&other_hello)]);
        assert_eq!(refused.status.code(), Some(50), "{}", text(&refused));
        let said = stderr(&refused);
        assert!(
            said.contains("vermagic") && said.contains("nothing was loaded"),
            "{said}"
        );
        assert!(!said.contains("inserting"), "{said}");
        assert_none_loaded(&host, &["hello"], "after a refused load");
    }
    assert!(loaders(&host).is_empty(), "{:?}", loaders(&host));

    // Fails at the second module: the first is unloaded again.
    let failed = dmb_vm_run(&host, &["load", &path(&fails)]);
    assert_eq!(failed.status.code(), Some(61), "{}", text(&failed));
    let said = stderr(&failed);
    assert!(said.contains("the kernel refused dmb_second"), "{said}");
    assert!(
        said.contains("dmb_second: refusing to load, on purpose"),
        "{said}"
    );
    assert!(
        said.contains("unloaded again what this run had loaded: dmb_first"),
        "{said}"
    );
    assert_none_loaded(&host, &["dmb_first", "dmb_second"], "after a failed load");
    assert!(loaders(&host).is_empty(), "{:?}", loaders(&host));

    // --persist, from an image (MODULE_REF in the VM's engine) and a file;
    // a restart brings them back with no dmb command.
    let image = images[1].name();
    image_to_vm(&host, image, out.path());
    dmb_vm_ok(&host, &["load", "--persist", image, &path(&hello)]);
    let persistent = loaders(&host);
    assert_eq!(persistent.len(), 1, "{persistent:?}");
    let host = sim.start("restart", UP_WARM);
    let started = Instant::now();
    let wanted = ["hello", "dmb_provider", "dmb_consumer"];
    while !wanted
        .iter()
        .all(|w| loaded_modules(&host).iter().any(|l| l == w))
    {
        assert!(
            started.elapsed() < 2 * MIN,
            "the loader did not load {wanted:?} after the restart: {:?}",
            loaded_modules(&host)
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let s = status(&host);
    assert_eq!(s["loaders"][0]["persistent"], true);
    assert_eq!(s["loaders"][0]["status"], "running");
    assert!(s["modules"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["loaded"] == true && m["same_build"] == true));

    // unload --persist: gone now, and still gone after a restart.
    dmb_vm_ok(
        &host,
        &[
            "unload",
            "--persist",
            "dmb_consumer",
            "dmb_provider",
            "hello",
        ],
    );
    assert_none_loaded(&host, &wanted, "after unload --persist");
    assert!(loaders(&host).is_empty(), "{:?}", loaders(&host));
    let host = sim.start("restart", UP_WARM);
    std::thread::sleep(Duration::from_secs(10));
    assert_none_loaded(&host, &wanted, "after unload --persist and a restart");
    assert!(loaders(&host).is_empty(), "{:?}", loaders(&host));
}
