//! The packets waiting to be played: a fixed set of payload slots allocated
//! once, and their descriptions kept sorted by timestamp. One spare slot
//! holds a packet that may turn out to start a new stream.

/// Largest payload kept; anything bigger is refused. 60 ms of G.711 is 480
/// bytes, and a VoIP Opus packet stays well below this.
pub const MAX_PAYLOAD: usize = 1280;
/// Packets the buffer can hold at once: 640 ms of 20 ms packets, 320 ms of
/// 10 ms ones, comfortably beyond the largest delay the buffer aims for.
pub const SLOTS: usize = 32;
const SPARE: usize = SLOTS;

/// A queued packet, in extended (unwrapped) sequence and timestamp units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Entry {
    pub sequence: i64,
    pub timestamp: i64,
    pub duration: u32,
    pub arrival_us: i64,
    len: u16,
    slot: u8,
}

impl Entry {
    pub(super) fn new(sequence: i64, timestamp: i64, duration: u32, arrival_us: i64) -> Self {
        Entry { sequence, timestamp, duration, arrival_us, len: 0, slot: 0 }
    }

    pub(super) fn end(&self) -> i64 {
        self.timestamp + i64::from(self.duration)
    }
}

pub(super) struct Queue {
    /// `entries[..len]`, ascending by timestamp.
    entries: [Entry; SLOTS],
    len: usize,
    free: [u8; SLOTS],
    free_len: usize,
    payloads: Box<[[u8; MAX_PAYLOAD]]>,
    spare_len: usize,
}

impl Queue {
    pub(super) fn new() -> Self {
        let mut free = [0u8; SLOTS];
        for (index, slot) in free.iter_mut().enumerate() {
            *slot = index as u8;
        }
        Queue {
            entries: [Entry::default(); SLOTS],
            len: 0,
            free,
            free_len: SLOTS,
            payloads: vec![[0u8; MAX_PAYLOAD]; SLOTS + 1].into_boxed_slice(),
            spare_len: 0,
        }
    }

    pub(super) fn is_full(&self) -> bool {
        self.len == SLOTS
    }

    pub(super) fn get(&self, index: usize) -> Option<&Entry> {
        self.entries[..self.len].get(index)
    }

    pub(super) fn first(&self) -> Option<&Entry> {
        self.get(0)
    }

    pub(super) fn contains_timestamp(&self, timestamp: i64) -> bool {
        self.entries[..self.len].binary_search_by_key(&timestamp, |e| e.timestamp).is_ok()
    }

    pub(super) fn payload(&self, entry: &Entry) -> &[u8] {
        &self.payloads[usize::from(entry.slot)][..usize::from(entry.len)]
    }

    /// Queue a packet; the caller has checked there is room, the payload
    /// fits and no queued packet has the same timestamp.
    pub(super) fn push(&mut self, entry: Entry, payload: &[u8]) {
        let slot = self.take_slot();
        self.payloads[slot][..payload.len()].copy_from_slice(payload);
        self.place(Entry { len: payload.len() as u16, slot: slot as u8, ..entry });
    }

    /// Keep a copy of `payload` aside, replacing what was kept before.
    pub(super) fn hold(&mut self, payload: &[u8]) {
        self.payloads[SPARE][..payload.len()].copy_from_slice(payload);
        self.spare_len = payload.len();
    }

    /// Queue the held payload as `entry`; same preconditions as `push`.
    pub(super) fn push_held(&mut self, entry: Entry) {
        let slot = self.take_slot();
        let (slots, spare) = self.payloads.split_at_mut(SPARE);
        slots[slot][..self.spare_len].copy_from_slice(&spare[0][..self.spare_len]);
        self.place(Entry { len: self.spare_len as u16, slot: slot as u8, ..entry });
    }

    /// Take the oldest packet out. Its payload stays readable through
    /// `payload` until the next push.
    pub(super) fn remove_first(&mut self) -> Option<Entry> {
        if self.len == 0 {
            return None;
        }
        let first = self.entries[0];
        self.entries.copy_within(1..self.len, 0);
        self.len -= 1;
        self.free[self.free_len] = first.slot;
        self.free_len += 1;
        Some(first)
    }

    pub(super) fn clear(&mut self) {
        while self.remove_first().is_some() {}
    }

    fn take_slot(&mut self) -> usize {
        self.free_len -= 1;
        usize::from(self.free[self.free_len])
    }

    fn place(&mut self, entry: Entry) {
        // Packets mostly arrive in order, so the search usually ends at the tail.
        let at = self.entries[..self.len].partition_point(|e| e.timestamp < entry.timestamp);
        self.entries.copy_within(at..self.len, at + 1);
        self.entries[at] = entry;
        self.len += 1;
    }
}
