//! One of a call's UDP ports as the media thread uses it: non-blocking,
//! read in batches (`recvmmsg`) together with the kernel's arrival time of
//! each datagram (`SO_TIMESTAMPNS`). The thread reads every port once per
//! 20 ms tick instead of waking per packet, and still knows when each
//! packet really arrived, which jitter (RFC 3550 A.8) and the jitter
//! buffer need.

use std::cell::RefCell;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::socket::{self, sockopt, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage};
use nix::sys::time::TimeSpec;

/// Largest datagram we read.
pub const MAX_DATAGRAM: usize = 1500;
/// Datagrams read per system call. A call's peer sends one per 20 ms; a few
/// more cover a burst after a network stall, and the loop reads on until
/// the socket is empty.
const BATCH: usize = 4;
/// The longest the two clock reads of [`ArrivalClock::now`] may be apart.
const MAX_CLOCK_SPLIT: Duration = Duration::from_micros(50);
/// Tries at finding a free even/odd port pair before giving up.
const PORT_PAIR_TRIES: usize = 32;

/// A UDP port of a call.
pub struct MediaSocket {
    udp: UdpSocket,
}

impl MediaSocket {
    fn new(udp: UdpSocket) -> io::Result<MediaSocket> {
        udp.set_nonblocking(true)?;
        socket::setsockopt(&udp, sockopt::ReceiveTimestampns, &true)?;
        Ok(MediaSocket { udp })
    }

    /// Send one datagram; a full socket buffer drops it, as the network would.
    pub fn send_to(&self, packet: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.udp.send_to(packet, to)
    }

    /// Read every datagram waiting here, oldest first, handing each to
    /// `each` with its sender and arrival time. Never blocks.
    pub fn drain(&self, clock: &ArrivalClock, each: impl FnMut(SocketAddr, Instant, &[u8])) {
        READER.with_borrow_mut(|reader| reader.drain(self, clock, each));
    }
}

thread_local! {
    /// The receive buffers of each thread that reads ports (the lanes of a
    /// tick may run on several), shared by every port it reads.
    static READER: RefCell<Reader> = RefCell::new(Reader::default());
}

/// Receive buffers for one port at a time. Not `Send`: made on the thread
/// that reads.
struct Reader {
    headers: MultiHeaders<SockaddrStorage>,
    buffers: Box<[[u8; MAX_DATAGRAM]; BATCH]>,
}

impl Default for Reader {
    fn default() -> Self {
        let headers = MultiHeaders::preallocate(BATCH, Some(nix::cmsg_space!(TimeSpec)));
        Reader { headers, buffers: Box::new([[0; MAX_DATAGRAM]; BATCH]) }
    }
}

impl Reader {
    fn drain(&mut self, socket: &MediaSocket, clock: &ArrivalClock, mut each: impl FnMut(SocketAddr, Instant, &[u8])) {
        let fd = socket.udp.as_raw_fd();
        loop {
            let mut slices = self.buffers.each_mut().map(|buffer| [IoSliceMut::new(buffer)]);
            let received =
                match socket::recvmmsg(fd, &mut self.headers, slices.iter_mut(), MsgFlags::MSG_DONTWAIT, None) {
                    Ok(results) => {
                        let mut count = 0;
                        for message in results {
                            count += 1;
                            let from = message.address.as_ref().and_then(socket_addr);
                            let arrived = message.cmsgs().ok().and_then(|mut cmsgs| {
                                cmsgs.find_map(|cmsg| match cmsg {
                                    ControlMessageOwned::ScmTimestampns(at) => Some(at),
                                    _ => None,
                                })
                            });
                            let data = message.iovs().next().unwrap_or_default();
                            if let Some(from) = from {
                                each(from, clock.instant_of(arrived), data);
                            }
                        }
                        count
                    }
                    Err(Errno::EAGAIN) => return,
                    // ICMP port unreachable from a peer that is not listening yet: read on.
                    Err(Errno::ECONNREFUSED | Errno::EINTR) => continue,
                    Err(e) => {
                        tracing::warn!(port = ?socket.udp.local_addr().ok(), error = %e, "RTP receive failed");
                        return;
                    }
                };
            if received < BATCH {
                return;
            }
        }
    }
}

fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    address.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

/// A call's RTP and RTCP ports: RTP on an even port, RTCP on the next.
pub struct PortPair {
    pub rtp: MediaSocket,
    pub rtcp: MediaSocket,
}

impl PortPair {
    /// Bind a free even/odd pair on `ip`.
    pub fn bind(ip: IpAddr) -> io::Result<PortPair> {
        let mut last_error = None;
        for _ in 0..PORT_PAIR_TRIES {
            let rtp = UdpSocket::bind((ip, 0))?;
            let port = rtp.local_addr()?.port();
            if port % 2 == 1 || port == u16::MAX {
                continue;
            }
            match UdpSocket::bind((ip, port + 1)) {
                Ok(rtcp) => return Ok(PortPair { rtp: MediaSocket::new(rtp)?, rtcp: MediaSocket::new(rtcp)? }),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("no free RTP/RTCP port pair")))
    }

    pub fn rtp_addr(&self) -> io::Result<SocketAddr> {
        self.rtp.udp.local_addr()
    }
}

/// The kernel stamps arrivals on the wall clock; the engine counts on the
/// monotonic one. Both are read once per tick and the offset applied.
pub struct ArrivalClock {
    instant: Instant,
    since_epoch: Duration,
}

impl ArrivalClock {
    /// Both clocks read together: a read pair the scheduler split (more than
    /// 50 µs between them) is read again, a few times at most, since the
    /// split would shift every arrival of the tick.
    pub fn now() -> ArrivalClock {
        let mut best = None;
        for _ in 0..4 {
            let before = Instant::now();
            let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            let after = Instant::now();
            let split = after - before;
            let clock = ArrivalClock { instant: before + split / 2, since_epoch };
            if split <= MAX_CLOCK_SPLIT {
                return clock;
            }
            best.get_or_insert((split, clock));
        }
        best.expect("read at least once").1
    }

    /// When a datagram stamped `arrived` came, on the monotonic clock; now
    /// when the kernel gave no stamp (or a wall-clock step put it ahead).
    fn instant_of(&self, arrived: Option<TimeSpec>) -> Instant {
        let Some(arrived) = arrived else { return self.instant };
        let arrived = Duration::new(arrived.tv_sec().max(0) as u64, arrived.tv_nsec().clamp(0, 999_999_999) as u32);
        let age = self.since_epoch.saturating_sub(arrived);
        self.instant.checked_sub(age).unwrap_or(self.instant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_reads_every_waiting_datagram_with_its_sender_and_a_past_arrival_time() {
        let pair = PortPair::bind(IpAddr::from([127, 0, 0, 1])).unwrap();
        let rtp = pair.rtp_addr().unwrap();
        assert_eq!(rtp.port() % 2, 0);
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sent_at = Instant::now();
        for n in 0..(BATCH as u8 * 2 + 1) {
            peer.send_to(&[n; 12], rtp).unwrap();
        }
        std::thread::sleep(Duration::from_millis(30));
        let clock = ArrivalClock::now();
        let mut seen = Vec::new();
        pair.rtp.drain(&clock, |from, at, data| seen.push((from, at, data.to_vec())));
        assert_eq!(seen.len(), BATCH * 2 + 1, "all of them, across batches");
        for (n, (from, at, data)) in seen.iter().enumerate() {
            assert_eq!(*from, peer.local_addr().unwrap());
            assert_eq!(data, &vec![n as u8; 12]);
            // Stamped by the kernel when it came, not when we read it.
            let (early, late) = (sent_at.saturating_duration_since(*at), at.saturating_duration_since(clock.instant));
            assert!(
                early < Duration::from_millis(1) && late.is_zero(),
                "{n}: {early:?} before sending, {late:?} after reading"
            );
        }
        let mut again = 0;
        pair.rtp.drain(&clock, |_, _, _| again += 1);
        assert_eq!(again, 0, "nothing left, and no blocking");
    }
}
