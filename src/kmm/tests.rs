//! The manifest, field by field, against KMM's `Module` (v1beta1): the
//! fields KMM requires (`spec.moduleLoader.container.kernelMappings`,
//! `modprobe.moduleName`, `spec.selector`) and the ones dmb's images
//! need (`dirName: /opt`).

use super::*;
use crate::ko::tests::Fixture;

fn module(name: &str, release: &str, depends: &str) -> Module {
    let mut f = Fixture::hello();
    f.modinfo = format!(
        "vermagic={release} SMP preempt mod_unload modversions \0name={name}\0depends={depends}\0"
    )
    .into_bytes();
    Module::read(&format!("{name}.ko"), f.elf()).unwrap()
}

fn image(reference: &str, release: &str) -> BuiltImage {
    BuiltImage {
        reference: reference.into(),
        modules: vec![
            module("pair_user", release, "pair_base"),
            module("pair_base", release, ""),
        ],
        dependencies: vec![],
    }
}

fn opts() -> KmmOptions {
    KmmOptions {
        namespace: "default".into(),
        ..Default::default()
    }
}

#[test]
fn two_kernels_two_mappings_and_the_module_nothing_else_needs() {
    let images = [
        image("registry.example/pair:6.1.0-57-amd64", "6.1.0-57-amd64"),
        image("registry.example/pair:6.1.0-58-amd64", "6.1.0-58-amd64"),
    ];
    let m = manifest(&images, &opts()).unwrap();
    let yaml: serde_norway::Value = serde_norway::from_str(&to_yaml(&m)).unwrap();
    assert_eq!(yaml["apiVersion"], "kmm.sigs.x-k8s.io/v1beta1");
    assert_eq!(yaml["kind"], "Module");
    assert_eq!(yaml["metadata"]["name"], "pair-user");
    assert_eq!(yaml["metadata"]["namespace"], "default");
    let container = &yaml["spec"]["moduleLoader"]["container"];
    assert_eq!(container["modprobe"]["moduleName"], "pair_user");
    assert_eq!(container["modprobe"]["dirName"], "/opt");
    assert!(container["modprobe"].get("parameters").is_none());
    let mappings = container["kernelMappings"].as_sequence().unwrap();
    assert_eq!(mappings.len(), 2);
    assert_eq!(mappings[0]["literal"], "6.1.0-57-amd64");
    assert_eq!(
        mappings[0]["containerImage"],
        "registry.example/pair:6.1.0-57-amd64"
    );
    assert_eq!(mappings[1]["literal"], "6.1.0-58-amd64");
    // The fixture is x86_64: the nodes of that architecture.
    assert_eq!(yaml["spec"]["selector"]["kubernetes.io/arch"], "amd64");
}

#[test]
fn choices_and_parameters_are_the_users() {
    let o = KmmOptions {
        name: Some("base".into()),
        namespace: "kmm".into(),
        module: Some("pair-base".into()),
        parameters: vec!["debug=1".into()],
        selector: vec![("node-role.kubernetes.io/worker".into(), "".into())],
    };
    let m = manifest(&[image("p:1", "6.1.0-57-amd64")], &o).unwrap();
    assert_eq!(m.metadata.name, "base");
    assert_eq!(
        m.spec.module_loader.container.modprobe.module_name,
        "pair_base"
    );
    assert_eq!(
        m.spec.module_loader.container.modprobe.parameters,
        ["debug=1"]
    );
    assert_eq!(
        m.spec.selector,
        BTreeMap::from([("node-role.kubernetes.io/worker".into(), "".into())])
    );
}

#[test]
fn images_that_do_not_make_one_module_are_refused() {
    let a = image("p:a", "6.1.0-57-amd64");
    let same_kernel = image("p:b", "6.1.0-57-amd64");
    assert!(matches!(
        manifest(&[a.clone(), same_kernel], &opts()),
        Err(KmmError::TwoImagesForOneKernel { .. })
    ));
    let mut other = image("p:c", "6.1.0-58-amd64");
    other.modules.pop();
    assert!(matches!(
        manifest(&[a.clone(), other], &opts()),
        Err(KmmError::DifferentModules { .. })
    ));
    let mut two_tops = a.clone();
    two_tops.modules.push(module("other", "6.1.0-57-amd64", ""));
    assert!(matches!(
        manifest(&[two_tops], &opts()),
        Err(KmmError::WhichModule { .. })
    ));
    let mut mixed = a.clone();
    mixed
        .modules
        .push(module("x", "6.1.0-58-amd64", "pair_user"));
    assert!(matches!(
        manifest(&[mixed], &opts()),
        Err(KmmError::MixedReleases { .. })
    ));
    assert_eq!(manifest(&[], &opts()), Err(KmmError::NoImages));
    let o = KmmOptions {
        module: Some("nope".into()),
        ..opts()
    };
    assert!(matches!(
        manifest(&[a], &o),
        Err(KmmError::NoSuchModule { .. })
    ));
}
