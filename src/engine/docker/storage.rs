//! [`Storage`] over the docker CLI.

use super::super::storage::{parse_disk_usage, DiskUsage, Storage};
use super::super::EngineError;
use super::DockerCli;

impl Storage for DockerCli {
    fn disk_usage(&self) -> Result<DiskUsage, EngineError> {
        let inv = self
            .invocation()
            .args(["system", "df", "--verbose", "--format", "{{json .}}"]);
        let done = self.run_checked(&inv)?;
        parse_disk_usage(&done.stdout).map_err(|detail| EngineError::Command {
            command: inv.summary(),
            detail: format!("its output does not parse: {detail}"),
        })
    }

    fn image_ids_with_label(&self, label: &str) -> Result<Vec<String>, EngineError> {
        let filter = format!("label={label}");
        let inv = self.invocation().args([
            "image",
            "ls",
            "--all",
            "--quiet",
            "--no-trunc",
            "--filter",
            &filter,
        ]);
        let mut ids: Vec<String> = self
            .run_checked(&inv)?
            .stdout
            .split_whitespace()
            .map(str::to_string)
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        let inv = self.invocation().args(["volume", "rm", "--", name]);
        self.run_checked(&inv).map(|_| ())
    }

    fn remove_build_cache(&self, ids: &[String]) -> Result<(), EngineError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut inv = self.invocation().args(["builder", "prune", "--force"]);
        for id in ids {
            inv = inv.args(["--filter", &format!("id={id}")]);
        }
        self.run_checked(&inv).map(|_| ())
    }
}
