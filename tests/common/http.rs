//! A loopback HTTP server for the URL paths: serves one file, counting the
//! requests, until dropped. Loopback only (the tests' network rule).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

pub struct FileServer {
    pub base: String,
    served: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FileServer {
    /// Serves `file` at every path.
    pub fn new(file: PathBuf) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let served = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, halt) = (served.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                let mut request = [0u8; 8192];
                let _ = stream.read(&mut request);
                let mut body = std::fs::File::open(&file).unwrap();
                let len = body.metadata().unwrap().len();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
                );
                if stream.write_all(head.as_bytes()).is_ok()
                    && std::io::copy(&mut body, &mut stream).is_ok()
                {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        FileServer {
            base,
            served,
            stop,
            thread: Some(thread),
        }
    }

    /// How many responses were sent whole.
    pub fn served(&self) -> usize {
        self.served.load(Ordering::Relaxed)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
