//! `dmb kmm`: a Kubernetes KMM `Module` for images `dmb build` made.

use std::io::Write;

use super::modules::with_engine;
use super::{Cli, Outcome};
use crate::kmm::{self, BuiltImage, KmmOptions};
use crate::module_files;

#[derive(Debug, clap::Args)]
pub struct KmmArgs {
    /// MODULE_REF images, one per kernel (as the cluster pulls them: push
    /// them to a registry the nodes reach, under these names).
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,

    /// The Module's name (default: the module's, as a Kubernetes name).
    #[arg(long)]
    pub name: Option<String>,

    #[arg(long, default_value = "default")]
    pub namespace: String,

    /// The module modprobe loads (default: the one no other module of the
    /// image needs).
    #[arg(long)]
    pub module: Option<String>,

    /// A module parameter, `name=value` (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,

    /// A node label the Module selects, `key=value` (repeatable; default:
    /// `kubernetes.io/arch` of the modules).
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
    pub selector: Vec<(String, String)>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

pub fn run(cli: &Cli, args: &KmmArgs) -> Outcome {
    let images = with_engine(cli, true, |session, scratch| {
        args.images
            .iter()
            .map(|reference| {
                let given = module_files::read(std::slice::from_ref(reference), session, scratch)?;
                let dependencies = given
                    .dependencies
                    .iter()
                    .map(|m| m.module.name.clone())
                    .collect();
                Ok(BuiltImage {
                    reference: reference.clone(),
                    modules: given.all().map(|m| m.module).collect(),
                    dependencies,
                })
            })
            .collect::<Result<Vec<_>, crate::Error>>()
    })?;
    let manifest = kmm::manifest(
        &images,
        &KmmOptions {
            name: args.name.clone(),
            namespace: args.namespace.clone(),
            module: args.module.clone(),
            parameters: args.params.clone(),
            selector: args.selector.clone(),
        },
    )?;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(kmm::to_yaml(&manifest).as_bytes());
    Ok(0)
}
