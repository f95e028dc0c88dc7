//! One dmb run's identity, and what it must remove when it ends.

use std::cell::RefCell;

use super::{Engine, EngineError, SESSION_LABEL};

/// Everything a run creates is named after and labelled with its session,
/// so that cleanup after a failure or Ctrl-C removes exactly that.
pub struct Session {
    id: String,
    images: RefCell<Vec<String>>,
    dangling: RefCell<Vec<(String, String)>>,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    pub fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let id = format!("{:x}{:08x}", std::process::id(), nanos);
        Session {
            dangling: RefCell::new(vec![(SESSION_LABEL.to_string(), id.clone())]),
            id,
            images: RefCell::default(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// A container name of this session.
    pub fn name(&self, what: &str) -> String {
        format!("dmb-{}-{what}", self.id)
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

    /// Removes what this run created and did not hand over. Errors are
    /// reported, not raised: cleanup must not hide the run's own error.
    pub fn cleanup(&self, engine: &dyn Engine, report: &mut dyn FnMut(&str)) {
        let mut attempt = |r: Result<(), EngineError>| {
            if let Err(e) = r {
                report(&format!("cleanup: {e}"));
            }
        };
        attempt(engine.remove_session_containers(&self.id));
        for image in self.images.borrow_mut().drain(..) {
            if let Ok(Some(_)) = engine.image_id(&image) {
                attempt(engine.remove_image(&image));
            }
        }
        for (label, value) in self.dangling.borrow().iter() {
            attempt(engine.prune_dangling(label, value));
        }
    }
}

/// An engine connected on first use: commands that may not need one (a
/// check of local files) do not fail when none runs.
pub struct LazyEngine<'a> {
    connect: Box<dyn Fn() -> Result<Box<dyn Engine>, EngineError> + 'a>,
    engine: std::cell::OnceCell<Box<dyn Engine>>,
}

impl<'a> LazyEngine<'a> {
    pub fn new(connect: impl Fn() -> Result<Box<dyn Engine>, EngineError> + 'a) -> Self {
        LazyEngine {
            connect: Box::new(connect),
            engine: std::cell::OnceCell::new(),
        }
    }

    pub fn get(&self) -> Result<&dyn Engine, EngineError> {
        if let Some(e) = self.engine.get() {
            return Ok(e.as_ref());
        }
        let e = (self.connect)()?;
        Ok(self.engine.get_or_init(|| e).as_ref())
    }

    /// The engine, if anything connected it.
    pub fn connected(&self) -> Option<&dyn Engine> {
        self.engine.get().map(|e| e.as_ref())
    }
}
