//! Files dmb fetches over http(s) — kernel sources — each verified against a
//! SHA-256 (the one given, or the one its publisher lists next to it) and
//! kept in the cache under that hash: a second run, or a run that names
//! the hash, reads the file without touching the network. Nothing that did
//! not verify is ever kept.
//!
//! ```text
//! <cache>/downloads/sha256/<hex>    the files, by content
//! <cache>/downloads/urls/<hash of url>   the hex a URL verified as
//! ```

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::progress::Progress;

/// A verified file in the cache.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub path: PathBuf,
    pub sha256: String,
    /// Read from the cache, not the network.
    pub cached: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{url}: {reason}")]
    Failed { url: String, reason: String },
    #[error("{url}: its SHA-256 is {actual}, not the {expected} {from}")]
    Mismatch {
        url: String,
        actual: String,
        expected: String,
        from: String,
    },
    #[error("{url}: no SHA-256 to verify it against (its publisher lists none dmb knows of)")]
    NoChecksum { url: String },
    #[error("no cache directory to download into (set HOME, XDG_CACHE_HOME or DMB_CACHE_DIR)")]
    NoCache,
}

/// Whether `given` names something to fetch rather than a local path.
pub fn is_url(given: &str) -> bool {
    given.starts_with("http://") || given.starts_with("https://")
}

/// The last segment of a URL's path: the file's name.
pub fn file_name(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/').find(|s| !s.is_empty()).unwrap_or(path)
}

/// Where the publisher lists the SHA-256 of `url`, when dmb knows:
/// kernel.org keeps a `sha256sums.asc` in every directory of tarballs.
pub fn published_checksums(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let (host, path) = rest.split_once('/')?;
    let kernel_org = matches!(
        host,
        "cdn.kernel.org" | "www.kernel.org" | "mirrors.kernel.org"
    );
    if !kernel_org || !path.starts_with("pub/linux/kernel/") {
        return None;
    }
    let dir = &url[..url.rfind('/')?];
    Some(format!("{dir}/sha256sums.asc"))
}

/// The hash a checksum list (`sha256sum` output, possibly PGP-clearsigned)
/// gives for `name`.
pub fn checksum_for(list: &str, name: &str) -> Option<String> {
    list.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (hex, file) = (fields.next()?, fields.next()?);
        let file = file.trim_start_matches('*');
        (fields.next().is_none()
            && file == name
            && hex.len() == 64
            && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
    })
}

/// Fetches `url` into the cache, verified against `expected` or, without
/// it, against the SHA-256 its publisher lists.
pub fn fetch(
    url: &str,
    expected: Option<&str>,
    progress: &mut dyn Progress,
) -> Result<Fetched, DownloadError> {
    let base = crate::cache::dir()
        .ok_or(DownloadError::NoCache)?
        .join("downloads");
    fetch_into(&base, url, expected, progress)
}

fn fetch_into(
    base: &Path,
    url: &str,
    expected: Option<&str>,
    progress: &mut dyn Progress,
) -> Result<Fetched, DownloadError> {
    let failed = |reason: String| DownloadError::Failed {
        url: url.to_string(),
        reason,
    };
    let by_hash = |hex: &str| base.join("sha256").join(hex);
    let url_entry = base.join("urls").join(hex(&Sha256::digest(url.as_bytes())));
    let expected = expected.map(|e| e.trim().to_ascii_lowercase());
    if let Some(e) = &expected {
        if e.len() != 64 || !e.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(failed(format!("{e} is not a SHA-256 (64 hex digits)")));
        }
    }

    // What this URL verified as before, or the hash given.
    let known = expected.clone().or_else(|| {
        std::fs::read_to_string(&url_entry)
            .ok()
            .map(|s| s.trim().to_string())
    });
    if let Some(hex) = &known {
        if by_hash(hex).is_file() {
            return Ok(Fetched {
                path: by_hash(hex),
                sha256: hex.clone(),
                cached: true,
            });
        }
    }

    let (want, from) = match expected {
        Some(e) => (e, "it was given with".to_string()),
        None => {
            let list_url = published_checksums(url).ok_or_else(|| DownloadError::NoChecksum {
                url: url.to_string(),
            })?;
            progress.step(&format!("fetching the published checksums {list_url}"));
            let list = get_text(&list_url).map_err(|reason| DownloadError::Failed {
                url: list_url.clone(),
                reason,
            })?;
            let name = file_name(url);
            let hex = checksum_for(&list, name).ok_or_else(|| DownloadError::Failed {
                url: list_url.clone(),
                reason: format!("lists no SHA-256 for {name}"),
            })?;
            (hex, format!("{list_url} lists"))
        }
    };
    if by_hash(&want).is_file() {
        remember(&url_entry, &want);
        return Ok(Fetched {
            path: by_hash(&want),
            sha256: want,
            cached: true,
        });
    }

    let dir = base.join("sha256");
    std::fs::create_dir_all(&dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .map_err(|e| failed(format!("{}: {e}", dir.display())))?;
    progress.step(&format!("downloading {url}"));
    let actual = get_file(url, tmp.as_file_mut(), progress).map_err(failed)?;
    if actual != want {
        return Err(DownloadError::Mismatch {
            url: url.to_string(),
            actual,
            expected: want,
            from,
        });
    }
    tmp.persist(by_hash(&want))
        .map_err(|e| failed(format!("keeping the download: {e}")))?;
    remember(&url_entry, &want);
    Ok(Fetched {
        path: by_hash(&want),
        sha256: want,
        cached: false,
    })
}

/// Notes what a URL verified as; a cache, so a failure is no error.
fn remember(entry: &Path, hex: &str) {
    if let Some(dir) = entry.parent() {
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::write(entry, hex);
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        // A stalled transfer is an error, a slow one is not.
        .timeout_recv_body(Some(Duration::from_secs(120)))
        .build()
        .into()
}

fn get_text(url: &str) -> Result<String, String> {
    let mut response = agent().get(url).call().map_err(|e| e.to_string())?;
    response
        .body_mut()
        .with_config()
        .limit(4 << 20)
        .read_to_string()
        .map_err(|e| e.to_string())
}

/// Streams `url` into `file`, hashing as it goes; returns the SHA-256.
fn get_file(
    url: &str,
    file: &mut std::fs::File,
    progress: &mut dyn Progress,
) -> Result<String, String> {
    let response = agent().get(url).call().map_err(|e| e.to_string())?;
    let total = response.body().content_length();
    let mut reader = response.into_body().into_reader();
    let mut meter = progress.meter(file_name(url), total);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut done = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(|e| e.to_string())?;
        done += n as u64;
        meter.set(done);
    }
    file.flush().map_err(|e| e.to_string())?;
    meter.finish(done);
    Ok(hex(&hash.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;
    use std::net::TcpListener;

    /// Serves `body` at any path, `times` times, on loopback.
    fn serve(body: Vec<u8>, times: usize) -> (String, std::thread::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut served = 0;
            for stream in listener.incoming().take(times) {
                let mut stream = stream.unwrap();
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).unwrap();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).unwrap();
                stream.write_all(&body).unwrap();
                served += 1;
            }
            served
        });
        (url, handle)
    }

    #[test]
    fn a_download_is_verified_kept_by_hash_and_read_again_without_the_network() {
        let cache = tempfile::tempdir().unwrap();
        let body = b"linux source".to_vec();
        let hex_of = hex(&Sha256::digest(&body));
        let (url, server) = serve(body.clone(), 1);
        let url = format!("{url}/linux-6.1.tar.xz");
        let first = fetch_into(cache.path(), &url, Some(&hex_of), &mut Silent).unwrap();
        assert!(!first.cached);
        assert_eq!(std::fs::read(&first.path).unwrap(), body);
        assert_eq!(server.join().unwrap(), 1);
        // The server is gone: the cache answers, by the URL and by the hash.
        let again = fetch_into(cache.path(), &url, None, &mut Silent).unwrap();
        assert!(again.cached);
        assert_eq!(again.path, first.path);
        let other_url = "http://127.0.0.1:1/elsewhere.tar.xz";
        assert!(
            fetch_into(cache.path(), other_url, Some(&hex_of), &mut Silent)
                .unwrap()
                .cached
        );
    }

    #[test]
    fn a_download_that_does_not_verify_is_refused_and_not_kept() {
        let cache = tempfile::tempdir().unwrap();
        let (url, server) = serve(b"tampered".to_vec(), 1);
        let wrong = "0".repeat(64);
        let err = fetch_into(
            cache.path(),
            &format!("{url}/x.tar.xz"),
            Some(&wrong),
            &mut Silent,
        )
        .unwrap_err();
        server.join().unwrap();
        assert!(matches!(err, DownloadError::Mismatch { .. }), "{err}");
        assert!(err.to_string().contains(&wrong), "{err}");
        let kept: Vec<_> = std::fs::read_dir(cache.path().join("sha256"))
            .unwrap()
            .collect();
        assert!(kept.is_empty(), "{kept:?}");
        // No hash given and none published: refused before any transfer.
        let err = fetch_into(
            cache.path(),
            "http://127.0.0.1:1/y.tar.xz",
            None,
            &mut Silent,
        )
        .unwrap_err();
        assert!(matches!(err, DownloadError::NoChecksum { .. }), "{err}");
    }

    #[test]
    fn kernel_org_publishes_its_checksums_next_to_the_tarballs() {
        let url = "https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.12.72.tar.xz";
        assert_eq!(
            published_checksums(url).unwrap(),
            "https://cdn.kernel.org/pub/linux/kernel/v6.x/sha256sums.asc"
        );
        assert_eq!(
            published_checksums("https://example.org/pub/linux/kernel/x.tar"),
            None
        );
        let list = format!(
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{}  linux-6.12.71.tar.xz\n{}  linux-6.12.72.tar.xz\n-----BEGIN PGP SIGNATURE-----\n",
            "a".repeat(64),
            "B".repeat(64)
        );
        assert_eq!(checksum_for(&list, file_name(url)).unwrap(), "b".repeat(64));
        assert_eq!(checksum_for(&list, "linux-6.12.7.tar.xz"), None);
        assert!(is_url(url) && !is_url("/usr/src/linux.tar.xz"));
    }
}
