//! Where a module's objects are kept between builds, so that a rebuild
//! after a one-file change recompiles one object, as kbuild on its own
//! would.
//!
//! The build directory `/usr/src/module` of the build container is kept:
//! a BuildKit cache mount (in the builder, wherever it runs) or, with the
//! legacy builder, a named volume of the engine. Its key hashes everything
//! that decides what an object file holds — the build environment (which
//! hashes the builder's and the kernel image's IDs), the kernel release,
//! the make arguments — and which module it is, so a change of any of
//! them starts from an empty directory and objects are never reused
//! across them. What is in the directory is brought up to date by
//! content, in the container (`sync_sources.sh`).

use std::path::Path;

use super::buildenv::cache_key;

/// Bump when what the build directory holds changes meaning.
const RECIPE: &str = "1";

/// Label on the legacy builder's volumes (BuildKit's cache mounts have
/// none: `docker builder prune` removes them).
pub const VOLUME_LABEL: &str = "dmb.build-cache";

/// The kept build directory of one module for one build environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildCache {
    /// 16 hex digits.
    pub key: String,
    /// Empty it before the build (`--fresh`).
    pub fresh: bool,
}

impl BuildCache {
    /// The cache of `module` (its canonical path on the host, or another
    /// name that is the same for every build of it) built in `buildenv`
    /// for `release` with `make_args`.
    pub fn new(
        buildenv: &str,
        release: &str,
        module: &str,
        make_args: &[String],
        fresh: bool,
    ) -> Self {
        let mut parts = vec![RECIPE, buildenv, release, module];
        parts.extend(make_args.iter().map(String::as_str));
        BuildCache {
            key: cache_key(&parts),
            fresh,
        }
    }

    /// The identity of a module directory: its canonical path, so that two
    /// spellings of one directory share a cache and two copies do not.
    pub fn module_identity(dir: &Path) -> String {
        std::fs::canonicalize(dir)
            .unwrap_or_else(|_| dir.to_path_buf())
            .to_string_lossy()
            .into_owned()
    }

    /// The BuildKit cache mount's id, and the legacy builder's volume.
    pub fn name(&self) -> String {
        format!("dmb-module-{}", self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_of_an_object_changes_the_key() {
        let args = vec!["W=1".to_string()];
        let base = BuildCache::new("dmb-buildenv:a", "6.1.0-57-amd64", "/m", &args, false);
        let variants = [
            BuildCache::new("dmb-buildenv:b", "6.1.0-57-amd64", "/m", &args, false),
            BuildCache::new("dmb-buildenv:a", "6.1.0-58-amd64", "/m", &args, false),
            BuildCache::new("dmb-buildenv:a", "6.1.0-57-amd64", "/n", &args, false),
            BuildCache::new("dmb-buildenv:a", "6.1.0-57-amd64", "/m", &[], false),
            BuildCache::new(
                "dmb-buildenv:a",
                "6.1.0-57-amd64",
                "/m",
                &["W=1".into(), "V=1".into()],
                false,
            ),
        ];
        for v in &variants {
            assert_ne!(base.key, v.key);
        }
        // Fresh or not, it is the same directory: --fresh empties it.
        let fresh = BuildCache::new("dmb-buildenv:a", "6.1.0-57-amd64", "/m", &args, true);
        assert_eq!(base.name(), fresh.name());
        assert_eq!(base.name().len(), "dmb-module-".len() + 16);
    }

    #[test]
    fn two_spellings_of_a_directory_are_one_module() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("m")).unwrap();
        assert_eq!(
            BuildCache::module_identity(&dir.path().join("m")),
            BuildCache::module_identity(&dir.path().join("m/../m/."))
        );
    }
}
