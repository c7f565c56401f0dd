//! The file work signals ask for (`server::Chores`): saving the prefetch list (SIGUSR1,
//! shutdown) and re-reading the session-ticket keys (SIGHUP). Each runs on a short-lived
//! thread so that the loop never waits for the disk; new ticket keys come back over a
//! channel and a wake-up of the loop's waker.

use std::path::PathBuf;
use std::sync::{mpsc, Arc};

use mio::Waker;

use crate::log::ERROR;
use crate::plog;
use crate::server::Chores;
use crate::sys::files::{Dir, Owners};
use crate::tls::context::{self, TICKET_KEYS_LEN};
use crate::tls::prefetch;

pub struct FileChores {
    /// CERT_PATH, for `prefetch`.
    pub dir: Arc<Dir>,
    pub ticket_keys: Option<PathBuf>,
    /// Who may own the ticket-key file re-read on SIGHUP.
    pub owners: Owners,
    pub keys_tx: mpsc::Sender<[u8; TICKET_KEYS_LEN]>,
    pub waker: Arc<Waker>,
}

fn save_prefetch(dir: &Dir, entries: &[(String, u64)]) {
    let borrowed: Vec<(&str, u64)> = entries.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    if let Err(e) = prefetch::write(dir, &borrowed) {
        plog!(
            ERROR,
            "sslctx_tbl_save: failed to open {}: {}",
            dir.path().join(prefetch::FILE_NAME).display(),
            e
        );
    }
}

impl Chores for FileChores {
    fn save_prefetch(&mut self, entries: Vec<(String, u64)>, last: bool) {
        let dir = self.dir.clone();
        if last {
            // Shutting down: the file must be written before the process exits.
            save_prefetch(&dir, &entries);
        } else if let Err(e) = std::thread::Builder::new()
            .name("prefetch".into())
            .spawn(move || save_prefetch(&dir, &entries))
        {
            plog!(ERROR, "sslctx_tbl_save: {}", e);
        }
    }

    fn reload_ticket_keys(&mut self) {
        let Some(path) = self.ticket_keys.clone() else {
            return;
        };
        let (tx, waker, owners) = (
            self.keys_tx.clone(),
            self.waker.clone(),
            self.owners.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("ticket-keys".into())
            .spawn(move || match context::read_ticket_keys(&path, &owners) {
                Ok(keys) => {
                    if tx.send(keys).is_ok() {
                        let _ = waker.wake();
                    }
                }
                Err(e) => plog!(ERROR, "SIGHUP: {}", e),
            });
        if let Err(e) = spawned {
            plog!(ERROR, "SIGHUP: {}", e);
        }
    }
}
