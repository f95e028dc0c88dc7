//! One dmb run against the engine: its identity, the engine handle, and
//! what it must remove when it ends.

use std::cell::{Cell, RefCell};

use super::{Base, ContainerSpec, EngineError, RunRequest, ScratchContainer, SESSION_LABEL};

/// Everything a run creates is named after and labelled with its session,
/// so that when the session is dropped (at the end of the run, after a
/// failure, after Ctrl-C) exactly that is removed.
pub struct Session<'e, E: ?Sized + Base> {
    engine: &'e E,
    id: String,
    images: RefCell<Vec<String>>,
    dangling: RefCell<Vec<(String, String)>>,
    scratch_count: Cell<usize>,
}

impl<'e, E: ?Sized + Base> Session<'e, E> {
    pub fn new(engine: &'e E) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let id = super::reap::session_id(std::process::id(), nanos);
        Session {
            engine,
            dangling: RefCell::new(vec![(SESSION_LABEL.to_string(), id.clone())]),
            id,
            images: RefCell::default(),
            scratch_count: Cell::new(0),
        }
    }

    pub fn engine(&self) -> &'e E {
        self.engine
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// A container name of this session.
    pub fn name(&self, what: &str) -> String {
        format!("dmb-{}-{what}", self.id)
    }

    /// A helper container of this session running `script` with no
    /// arguments and no capabilities.
    pub fn request(&self, image: &str, what: &str, script: &'static str) -> RunRequest {
        RunRequest {
            image: image.to_string(),
            name: self.name(what),
            session: self.id.clone(),
            script,
            args: Vec::new(),
            cap_add: Vec::new(),
            pid_host: false,
            host_mount_namespace: None,
        }
    }

    /// A container of this session, created to be started later.
    pub fn container(&self, image: &str, what: &str, script: &'static str) -> ContainerSpec {
        ContainerSpec {
            image: image.to_string(),
            name: self.name(what),
            labels: vec![(SESSION_LABEL.to_string(), self.id.clone())],
            cap_add: Vec::new(),
            restart_always: false,
            script: Some((script, Vec::new())),
        }
    }

    /// A container of `image` to read files out of, removed when dropped.
    pub fn scratch(&self, image: &str) -> Result<ScratchContainer<'e, E>, EngineError> {
        let n = self.scratch_count.get();
        self.scratch_count.set(n + 1);
        let spec = ContainerSpec {
            image: image.to_string(),
            name: self.name(&format!("scratch{n}")),
            labels: vec![(SESSION_LABEL.to_string(), self.id.clone())],
            cap_add: Vec::new(),
            restart_always: false,
            script: None,
        };
        ScratchContainer::create(self.engine, &spec)
    }

    /// An image to remove at the end unless [`Session::forget_image`] is called.
    pub fn track_image(&self, reference: &str) {
        self.images.borrow_mut().push(reference.to_string());
    }

    pub fn forget_image(&self, reference: &str) {
        self.images.borrow_mut().retain(|r| r != reference);
    }

    /// Dangling images with this label to prune at the end (a failed legacy
    /// build leaves its finished steps behind).
    pub fn track_dangling(&self, label: &str, value: &str) {
        self.dangling
            .borrow_mut()
            .push((label.to_string(), value.to_string()));
    }
}

/// Removes what this run created and did not hand over. Errors are
/// reported, not raised: cleanup must not hide the run's own error.
impl<E: ?Sized + Base> Drop for Session<'_, E> {
    fn drop(&mut self) {
        let report = |r: Result<(), EngineError>| {
            if let Err(e) = r {
                eprintln!("dmb: cleanup: {e}");
            }
        };
        report(self.engine.remove_labelled(SESSION_LABEL, &self.id));
        for image in self.images.borrow_mut().drain(..) {
            if let Ok(Some(_)) = self.engine.image_id(&image) {
                report(self.engine.remove_image(&image));
            }
        }
        for (label, value) in self.dangling.borrow().iter() {
            report(self.engine.prune_dangling(label, value));
        }
    }
}
