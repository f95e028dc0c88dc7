//! What the engine keeps on disk (`docker system df -v`), read as plain
//! values for `dmb cache`. The parsing is pure; [`Storage`] is the
//! engine's side.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::EngineError;

/// What `dmb cache` asks of the engine.
pub trait Storage {
    /// Images, volumes and BuildKit's cache, with their sizes.
    fn disk_usage(&self) -> Result<DiskUsage, EngineError>;

    /// The IDs of the images (tagged or not) carrying `label`.
    fn image_ids_with_label(&self, label: &str) -> Result<Vec<String>, EngineError>;

    /// Removes a volume (refused while a container uses it).
    fn remove_volume(&self, name: &str) -> Result<(), EngineError>;

    /// Removes BuildKit cache records by ID (`docker builder prune`).
    fn remove_build_cache(&self, ids: &[String]) -> Result<(), EngineError>;
}

/// The engine's disk, as `docker system df -v` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskUsage {
    pub images: Vec<ImageUsage>,
    pub volumes: Vec<VolumeUsage>,
    pub build_cache: Vec<BuildCacheUsage>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUsage {
    /// `sha256:…`
    pub id: String,
    /// `None` for an untagged image.
    pub reference: Option<String>,
    /// What removing it frees: the layers no other image shares.
    pub unique_bytes: u64,
    /// Its layers that other images share (a build environment's, with
    /// the kernel trees built on it).
    pub shared_bytes: u64,
    /// Containers made from it.
    pub containers: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeUsage {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub bytes: u64,
    /// Containers that mount it.
    pub links: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildCacheUsage {
    pub id: String,
    pub kind: String,
    pub description: String,
    pub bytes: u64,
    pub in_use: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawUsage {
    #[serde(default)]
    images: Option<Vec<RawImage>>,
    #[serde(default)]
    volumes: Option<Vec<RawVolume>>,
    #[serde(default)]
    build_cache: Option<Vec<RawCache>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawImage {
    #[serde(rename = "ID")]
    id: String,
    repository: String,
    tag: String,
    #[serde(default)]
    unique_size: String,
    #[serde(default)]
    shared_size: String,
    #[serde(default)]
    containers: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawVolume {
    name: String,
    #[serde(default)]
    labels: String,
    #[serde(default)]
    size: String,
    #[serde(default)]
    links: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawCache {
    #[serde(rename = "ID")]
    id: String,
    #[serde(default)]
    cache_type: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    size: String,
    #[serde(default)]
    in_use: String,
}

/// Parses `docker system df -v --format '{{json .}}'`.
pub fn parse_disk_usage(json: &str) -> Result<DiskUsage, String> {
    let raw: RawUsage = serde_json::from_str(json.trim()).map_err(|e| e.to_string())?;
    let count = |s: &str| s.trim().parse::<u64>().unwrap_or(0);
    Ok(DiskUsage {
        images: raw
            .images
            .unwrap_or_default()
            .into_iter()
            .map(|i| ImageUsage {
                reference: (i.repository != "<none>" && i.tag != "<none>")
                    .then(|| format!("{}:{}", i.repository, i.tag)),
                id: i.id,
                unique_bytes: human_bytes(&i.unique_size).unwrap_or(0),
                shared_bytes: human_bytes(&i.shared_size).unwrap_or(0),
                containers: count(&i.containers),
            })
            .collect(),
        volumes: raw
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| VolumeUsage {
                labels: v
                    .labels
                    .split(',')
                    .filter_map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
                    })
                    .collect(),
                name: v.name,
                bytes: human_bytes(&v.size).unwrap_or(0),
                links: count(&v.links),
            })
            .collect(),
        build_cache: raw
            .build_cache
            .unwrap_or_default()
            .into_iter()
            .map(|c| BuildCacheUsage {
                id: c.id,
                kind: c.cache_type,
                description: c.description,
                bytes: human_bytes(&c.size).unwrap_or(0),
                in_use: c.in_use == "true",
            })
            .collect(),
    })
}

/// Docker's human sizes (`units.HumanSize`: decimal, `B`, `kB`, `MB`, …)
/// back to bytes; `None` for what is not one (`N/A`).
pub fn human_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit.trim() {
        "" | "B" => 1e0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "PB" => 1e15,
        _ => return None,
    };
    Some((number * scale).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_sizes_are_decimal() {
        assert_eq!(human_bytes("0B"), Some(0));
        assert_eq!(human_bytes("157B"), Some(157));
        assert_eq!(human_bytes("7.61kB"), Some(7610));
        assert_eq!(human_bytes("143.6MB"), Some(143_600_000));
        assert_eq!(human_bytes("1.2GB"), Some(1_200_000_000));
        assert_eq!(human_bytes("N/A"), None);
        assert_eq!(human_bytes(""), None);
    }

    #[test]
    fn what_docker_system_df_says_is_read() {
        // Trimmed from `docker system df -v --format '{{json .}}'` of a
        // 20.10 engine.
        let json = r#"{"Images":[
          {"Containers":"0","ID":"sha256:2384","Repository":"dmb-buildenv","SharedSize":"435.1MB","Size":"579MB","Tag":"c07b8d814afc0bd0","UniqueSize":"143.6MB","VirtualSize":"578.7MB"},
          {"Containers":"1","ID":"sha256:9f00","Repository":"<none>","Tag":"<none>","UniqueSize":"12kB"}],
          "Containers":[],
          "Volumes":[{"Driver":"local","Labels":"dmb.build-cache=module","Links":"0","Name":"dmb-module-1ffe","Size":"680kB"},
                     {"Driver":"local","Labels":"","Links":"1","Name":"other","Size":"N/A"}],
          "BuildCache":[{"CacheType":"exec.cachemount","Description":"cached mount /usr/src/module from exec /bin/sh /usr/local/dmb/build.sh","ID":"ymmv","InUse":"false","Size":"435kB"}]}"#;
        let u = parse_disk_usage(json).unwrap();
        assert_eq!(
            u.images[0],
            ImageUsage {
                id: "sha256:2384".into(),
                reference: Some("dmb-buildenv:c07b8d814afc0bd0".into()),
                unique_bytes: 143_600_000,
                shared_bytes: 435_100_000,
                containers: 0,
            }
        );
        assert_eq!(u.images[1].reference, None);
        assert_eq!(u.images[1].containers, 1);
        assert_eq!(u.volumes[0].labels["dmb.build-cache"], "module");
        assert_eq!(u.volumes[0].bytes, 680_000);
        assert!(u.volumes[1].labels.is_empty());
        assert_eq!(u.volumes[1].links, 1);
        assert_eq!(u.build_cache[0].kind, "exec.cachemount");
        assert_eq!(u.build_cache[0].bytes, 435_000);
        assert!(!u.build_cache[0].in_use);
    }

    #[test]
    fn an_engine_without_volumes_or_build_cache_says_null() {
        let u = parse_disk_usage(
            r#"{"Images":null,"Containers":null,"Volumes":null,"BuildCache":null}"#,
        )
        .unwrap();
        assert_eq!(u, DiskUsage::default());
    }
}
