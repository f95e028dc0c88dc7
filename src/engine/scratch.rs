//! A container created only to read files out of an image (a kernel image,
//! a build environment, a MODULE_REF), and removed when dropped: itself,
//! not the rest of its session.

use std::io::Read;
use std::path::Path;

use super::{ContainerSpec, Containers, EngineError};

pub struct ScratchContainer<'e, E: ?Sized + Containers> {
    engine: &'e E,
    name: String,
}

impl<'e, E: ?Sized + Containers> ScratchContainer<'e, E> {
    pub(super) fn create(engine: &'e E, spec: &ContainerSpec) -> Result<Self, EngineError> {
        engine.create(spec)?;
        Ok(ScratchContainer {
            engine,
            name: spec.name.clone(),
        })
    }

    /// Streams a regular file to `read`; `Ok(false)` when it is not there.
    pub fn read_file(
        &self,
        path: &str,
        read: &mut dyn FnMut(&mut dyn Read) -> Result<(), String>,
    ) -> Result<bool, EngineError> {
        self.engine.read_file(&self.name, path, read)
    }

    /// A small file's bytes (at most `limit`), `None` when it is not there.
    pub fn read_small_file(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, EngineError> {
        let mut data = Vec::new();
        let found = self.read_file(path, &mut |r| {
            r.take(limit)
                .read_to_end(&mut data)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })?;
        Ok(found.then_some(data))
    }

    /// Size of a regular file, `None` when it is not there.
    pub fn file_size(&self, path: &str) -> Result<Option<u64>, EngineError> {
        self.engine.file_size(&self.name, path)
    }

    /// Copies the regular files directly in `dir` to `dest`; their names.
    pub fn copy_files_out(&self, dir: &str, dest: &Path) -> Result<Vec<String>, EngineError> {
        self.engine.copy_files_out(&self.name, dir, dest)
    }
}

impl<E: ?Sized + Containers> Drop for ScratchContainer<'_, E> {
    fn drop(&mut self) {
        if let Err(e) = self.engine.remove_container(&self.name) {
            eprintln!("dmb: cleanup: {e}");
        }
    }
}
