//! File-system watches (`notify`, event-driven, no polling): the drop-in file, its
//! directory and the settings directory above it (tamper detection), and the state directory
//! while `run` waits for `enroll` to write `device.json`.
//!
//! Events are sorted on notify's thread into [`Signal`]s and recorded in [`Pending`]: one
//! flag per kind (every signal of a kind means the same thing, "look again"), so a burst of
//! events takes no memory and none is lost. Reads (open, close after reading) are ignored, so
//! the agent's own content checks never wake it up again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;

use crate::state::DEVICE_FILE;

/// What the run loop should look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Something happened to the drop-in file or a directory above it: compare and restore.
    DropIn {
        /// When the event was seen (Unix ms).
        at_unix_ms: i64,
    },
    /// `device.json` appeared or changed: an enrollment.
    Enrollment,
}

/// Signals not yet handled by the run loop.
#[derive(Debug, Default)]
pub struct Pending {
    /// When the first unhandled drop-in event was seen (Unix ms); 0: none.
    drop_in_at: AtomicI64,
    enrollment: AtomicBool,
    notify: Notify,
}

impl Pending {
    /// Records a signal and wakes the waiter.
    pub fn raise(&self, signal: Signal) {
        match signal {
            Signal::DropIn { at_unix_ms } => {
                // Keep the earliest unhandled time.
                let _ = self.drop_in_at.compare_exchange(
                    0,
                    at_unix_ms.max(1),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
            }
            Signal::Enrollment => self.enrollment.store(true, Ordering::SeqCst),
        }
        self.notify.notify_one();
    }

    /// Takes every pending signal (at most one per kind).
    pub fn take(&self) -> Vec<Signal> {
        let mut out = Vec::new();
        let at = self.drop_in_at.swap(0, Ordering::SeqCst);
        if at != 0 {
            out.push(Signal::DropIn { at_unix_ms: at });
        }
        if self.enrollment.swap(false, Ordering::SeqCst) {
            out.push(Signal::Enrollment);
        }
        out
    }

    /// Waits until at least one signal is pending and takes them all. Cancel-safe: flags stay
    /// set until taken.
    pub async fn wait(&self) -> Vec<Signal> {
        loop {
            let taken = self.take();
            if !taken.is_empty() {
                return taken;
            }
            self.notify.notified().await;
        }
    }
}

/// The paths events are matched against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    /// `<settings>`.
    pub settings_dir: PathBuf,
    /// `<settings>/managed-settings.d`.
    pub drop_in_dir: PathBuf,
    /// `<settings>/managed-settings.d/50-palisade.json`.
    pub drop_in_file: PathBuf,
    /// `<state>/device.json`.
    pub device_file: PathBuf,
}

impl Targets {
    /// The targets for these directories.
    pub fn new(settings_dir: &Path, state_dir: &Path) -> Targets {
        Targets {
            settings_dir: settings_dir.to_owned(),
            drop_in_dir: settings_dir.join(palisade_policy::render::DROP_IN_DIR),
            drop_in_file: crate::enforce::drop_in_path(settings_dir),
            device_file: state_dir.join(DEVICE_FILE),
        }
    }

    /// The signal an event calls for, if any.
    pub fn classify(&self, event: &Event, now_unix_ms: i64) -> Option<Signal> {
        if let EventKind::Access(kind) = event.kind {
            // Opening or reading changes nothing; only a close after writing counts.
            if kind != AccessKind::Close(AccessMode::Write) {
                return None;
            }
        }
        // An overflowed queue or an unknown event: look again.
        if event.need_rescan() || event.paths.is_empty() {
            return Some(Signal::DropIn {
                at_unix_ms: now_unix_ms,
            });
        }
        let mut signal = None;
        for path in &event.paths {
            if path == &self.drop_in_file || path == &self.drop_in_dir || path == &self.settings_dir
            {
                return Some(Signal::DropIn {
                    at_unix_ms: now_unix_ms,
                });
            }
            if path == &self.device_file {
                signal = Some(Signal::Enrollment);
            }
        }
        signal
    }
}

/// The watcher and what it watches.
pub struct Watches {
    watcher: RecommendedWatcher,
    targets: Targets,
    state_dir: PathBuf,
    watching_state: bool,
}

impl std::fmt::Debug for Watches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watches")
            .field("targets", &self.targets)
            .field("watching_state", &self.watching_state)
            .finish()
    }
}

impl Watches {
    /// Starts a watcher thread that raises signals in `pending`. Nothing is watched yet.
    pub fn new(
        settings_dir: &Path,
        state_dir: &Path,
        pending: Arc<Pending>,
    ) -> notify::Result<Watches> {
        let targets = Targets::new(settings_dir, state_dir);
        let classify = targets.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<Event>| {
            let now = crate::now_unix_ms();
            let signal = match res {
                Ok(event) => classify.classify(&event, now),
                Err(err) => {
                    tracing::warn!(error = %err, "file watch error; checking the drop-in");
                    Some(Signal::DropIn { at_unix_ms: now })
                }
            };
            if let Some(signal) = signal {
                pending.raise(signal);
            }
        })?;
        Ok(Watches {
            watcher,
            targets,
            state_dir: state_dir.to_owned(),
            watching_state: false,
        })
    }

    /// (Re)watches the settings directory, the drop-in directory and the drop-in file. Call
    /// after every write and every drop-in signal: a replaced file is a new inode, and a
    /// removed directory takes its watch with it. Missing paths are skipped; other errors
    /// are returned after trying every path.
    pub fn arm_drop_in(&mut self) -> Result<(), String> {
        let mut errors = Vec::new();
        let paths = [
            self.targets.settings_dir.clone(),
            self.targets.drop_in_dir.clone(),
            self.targets.drop_in_file.clone(),
        ];
        for path in paths {
            if !path.exists() {
                continue;
            }
            if let Err(e) = self.watcher.watch(&path, RecursiveMode::NonRecursive) {
                if !matches!(e.kind, notify::ErrorKind::PathNotFound) {
                    errors.push(format!("{}: {e}", path.display()));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Watches the state directory (for `device.json`) or stops watching it.
    pub fn watch_state(&mut self, on: bool) -> Result<(), String> {
        if on == self.watching_state {
            return Ok(());
        }
        let result = if on {
            self.watcher
                .watch(&self.state_dir, RecursiveMode::NonRecursive)
        } else {
            self.watcher.unwatch(&self.state_dir)
        };
        match result {
            Ok(()) => {
                self.watching_state = on;
                Ok(())
            }
            Err(e) if !on => {
                // The directory may be gone; it is not watched either way.
                self.watching_state = false;
                Err(format!("{}: {e}", self.state_dir.display()))
            }
            Err(e) => Err(format!("{}: {e}", self.state_dir.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, ModifyKind, RemoveKind, RenameMode};
    use std::time::Duration;

    fn targets() -> Targets {
        Targets::new(Path::new("/etc/claude-code"), Path::new("/var/lib/pa"))
    }

    fn event(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(PathBuf::from(path))
    }

    const FILE: &str = "/etc/claude-code/managed-settings.d/50-palisade.json";

    #[test]
    fn drop_in_changes_are_signalled() {
        let t = targets();
        let drop_in = Some(Signal::DropIn { at_unix_ms: 5 });
        for kind in [
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Remove(RemoveKind::File),
            EventKind::Create(CreateKind::File),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
        ] {
            assert_eq!(t.classify(&event(kind, FILE), 5), drop_in, "{kind:?}");
        }
        let dir = event(
            EventKind::Remove(RemoveKind::Folder),
            "/etc/claude-code/managed-settings.d",
        );
        assert_eq!(t.classify(&dir, 5), drop_in);
    }

    #[test]
    fn reads_and_other_files_are_ignored() {
        let t = targets();
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
        ] {
            assert_eq!(t.classify(&event(kind, FILE), 1), None, "{kind:?}");
        }
        let modify = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        for other in [
            "/etc/claude-code/managed-settings.json",
            "/etc/claude-code/managed-settings.d/.50-palisade.json.1.tmp",
            "/etc/claude-code/managed-settings.d/60-other.json",
            "/var/lib/pa/status.json",
        ] {
            assert_eq!(t.classify(&event(modify, other), 1), None, "{other}");
        }
    }

    #[test]
    fn device_file_is_an_enrollment() {
        let t = targets();
        let ev = Event::new(EventKind::Modify(ModifyKind::Name(RenameMode::Both)))
            .add_path(PathBuf::from("/var/lib/pa/.device.json.1.tmp"))
            .add_path(PathBuf::from("/var/lib/pa/device.json"));
        assert_eq!(t.classify(&ev, 1), Some(Signal::Enrollment));
    }

    #[tokio::test]
    async fn pending_signals_coalesce_and_keep_the_earliest_time() {
        let p = Pending::default();
        assert!(p.take().is_empty());
        for at in [7, 5, 9] {
            p.raise(Signal::DropIn { at_unix_ms: at });
        }
        p.raise(Signal::Enrollment);
        p.raise(Signal::Enrollment);
        assert_eq!(
            p.wait().await,
            vec![Signal::DropIn { at_unix_ms: 7 }, Signal::Enrollment]
        );
        assert!(p.take().is_empty());
    }

    #[test]
    fn rescan_means_look_again() {
        let t = targets();
        let ev = Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan);
        assert_eq!(t.classify(&ev, 3), Some(Signal::DropIn { at_unix_ms: 3 }));
    }

    #[tokio::test]
    async fn real_watcher_reports_an_edit_and_an_enrollment() {
        let tmp = tempfile::tempdir().unwrap();
        let settings_dir = tmp.path().join("settings");
        let state_dir = tmp.path().join("state");
        let drop_in = crate::enforce::drop_in_path(&settings_dir);
        std::fs::create_dir_all(drop_in.parent().unwrap()).unwrap();
        std::fs::create_dir_all(&state_dir).unwrap();
        std::fs::write(&drop_in, b"{}\n").unwrap();

        let pending = Arc::new(Pending::default());
        let mut w = Watches::new(&settings_dir, &state_dir, pending.clone()).unwrap();
        w.arm_drop_in().unwrap();
        w.watch_state(true).unwrap();

        std::fs::write(&drop_in, b"{\"x\": 1}\n").unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), pending.wait())
            .await
            .unwrap();
        assert!(matches!(got[0], Signal::DropIn { .. }), "{got:?}");

        std::fs::write(state_dir.join(DEVICE_FILE), b"{}").unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = tokio::time::timeout_at(deadline, pending.wait())
                .await
                .unwrap();
            if got.contains(&Signal::Enrollment) {
                break;
            }
        }
    }
}
