//! Who the SIP side trusts, and why: `sip.allow_from`, and the addresses
//! each account's registrar and proxy were located at (at start or by a
//! later lookup). Kept by account, so that an account a reload removes or
//! changes takes its addresses with it, unless another account or
//! `allow_from` still names them. Plain data: the handle keeps the gate
//! and the desk in step with [`TrustedPeers::peers`].

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::call::admission::AllowedPeer;

#[derive(Debug, Default)]
pub(super) struct TrustedPeers {
    allow_from: Vec<AllowedPeer>,
    by_account: BTreeMap<String, Vec<SocketAddr>>,
}

impl TrustedPeers {
    pub(super) fn new(allow_from: Vec<AllowedPeer>) -> TrustedPeers {
        TrustedPeers { allow_from, by_account: BTreeMap::new() }
    }

    /// Everyone trusted, each once: `allow_from` first, then by account.
    pub(super) fn peers(&self) -> Vec<AllowedPeer> {
        let mut peers = self.allow_from.clone();
        for peer in self.by_account.values().flatten().copied().map(AllowedPeer::Socket) {
            if !peers.contains(&peer) {
                peers.push(peer);
            }
        }
        peers
    }

    /// `account` was located (again) at `addresses`, besides where it was.
    pub(super) fn add(&mut self, account: &str, addresses: impl IntoIterator<Item = SocketAddr>) {
        let known = self.by_account.entry(account.to_string()).or_default();
        for address in addresses {
            if !known.contains(&address) {
                known.push(address);
            }
        }
    }

    /// `account` is located at `addresses` only (its settings changed).
    pub(super) fn replace(&mut self, account: &str, addresses: Vec<SocketAddr>) {
        self.by_account.insert(account.to_string(), addresses);
    }

    /// `account` is gone, and what only it trusted with it.
    pub(super) fn remove(&mut self, account: &str) {
        self.by_account.remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(text: &str) -> AllowedPeer {
        AllowedPeer::Socket(text.parse().unwrap())
    }

    #[test]
    fn an_address_stays_trusted_while_anyone_still_names_it() {
        let (pbx, backup, edge) = ("192.0.2.10:5060", "192.0.2.20:5060", "198.51.100.5:5060");
        let mut trusted = TrustedPeers::new(vec![socket(edge)]);
        trusted.add("a", [pbx.parse().unwrap()]);
        trusted.add("b", [pbx.parse().unwrap(), edge.parse().unwrap()]);
        trusted.add("a", [backup.parse().unwrap()]);
        assert_eq!(trusted.peers(), [socket(edge), socket(pbx), socket(backup)]);
        trusted.remove("a");
        assert_eq!(trusted.peers(), [socket(edge), socket(pbx)], "b still names the PBX; a's backup went");
        trusted.replace("b", vec![backup.parse().unwrap()]);
        assert_eq!(trusted.peers(), [socket(edge), socket(backup)], "allow_from is never dropped");
    }
}
