//! Docker Desktop's `/etc/linuxkit.yml`: the VM's recipe, which names the
//! kernel image the VM booted.

/// The largest `/etc/linuxkit.yml` read.
pub const MAX_YML: usize = 1 << 20;

/// `kernel.image` of `/etc/linuxkit.yml`. Other images (`init:`, such as
/// `for-desktop-kernel-grpcfuse`) are not the kernel.
pub fn kernel_image(yaml: &str) -> Result<Option<String>, String> {
    // Docker Desktop's is a few KB; anything this large is not a recipe,
    // and is not worth parsing.
    if yaml.len() > MAX_YML {
        return Err(format!(
            "it is {} bytes, more than a LinuxKit recipe ever is",
            yaml.len()
        ));
    }
    #[derive(serde::Deserialize)]
    struct Yml {
        kernel: Option<KernelSection>,
    }
    #[derive(serde::Deserialize)]
    struct KernelSection {
        image: Option<String>,
    }
    let y: Yml = serde_norway::from_str(yaml).map_err(|e| e.to_string())?;
    Ok(y.kernel.and_then(|k| k.image))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const DD_4_13: &str = "kernel:\n  image: docker.io/docker/for-desktop-kernel:5.15.49-13422a825f833d125942948cf8a8688cef721ead\n  cmdline: page_poison=1 vsyscall=emulate panic=1 nospec_store_bypass_disable noibrs noibpb no_stf_barrier mitigations=off\ninit:\n- docker.io/docker/for-desktop-kernel-grpcfuse:5.15.49-e0f6f06f948f53fae09ba665e91b0cca9cc5f3c5\nfiles:\n- path: /etc/linuxkit.yml\n  metadata: yaml\n- path: /etc/os-release\n  contents: PRETTY_NAME=\"Docker Desktop\"\n";

    #[test]
    fn docker_desktop_4_13_linuxkit_yml() {
        assert_eq!(
            kernel_image(DD_4_13).unwrap().as_deref(),
            Some("docker.io/docker/for-desktop-kernel:5.15.49-13422a825f833d125942948cf8a8688cef721ead")
        );
        assert_eq!(kernel_image("init:\n- x\n").unwrap(), None);
        assert!(kernel_image("kernel: [unclosed").is_err());
    }

    #[test]
    fn huge_aliased_or_broken_recipes_are_errors_quickly() {
        // A "billion laughs": nine levels of nine aliases.
        let mut bomb = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
        {
            let refs = vec![format!("*{prev}"); 9].join(",");
            bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        bomb.push_str("kernel:\n  image: *i\n");
        assert!(kernel_image(&bomb).is_err());
        let huge = format!("kernel:\n  image: x\n# {}\n", "y".repeat(MAX_YML));
        assert!(kernel_image(&huge)
            .unwrap_err()
            .contains("more than a LinuxKit recipe"));
        assert!(kernel_image("\u{0}\u{1b}[2J not yaml: [").is_err());
        assert_eq!(kernel_image("").unwrap(), None);
    }
}
