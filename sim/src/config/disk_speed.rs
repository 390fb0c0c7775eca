//! How fast a simulated host's disk is, and the time its reads and writes take.
//!
//! Every host draws one [`DiskSpeed`] from its run's seed (a scenario lists the kinds it draws
//! from, from a fast NVMe drive to a busy spinning disk or a throttled cloud volume): how long an
//! `fsync` takes, how long a seek takes and how many bytes per second it moves. Reads and writes
//! land in the page cache at once, as in the seam's contract; the time the device needs to serve
//! them queues up in the host's [`IoQueue`] (one device, shared by every instance on the host)
//! and is paid by the next `fsync` or `settle` on that disk. So crash recovery, a rewind and a
//! full copy take time in proportion to the bytes they touch, and a slow disk widens every window
//! a sync opens.

use std::sync::Mutex;
use std::time::Duration;

use rand_chacha::rand_core::Rng;
use serde::Serialize;

/// One kind of disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DiskSpeed {
    pub kind: &'static str,
    pub fsync_min: Duration,
    pub fsync_max: Duration,
    /// Paid by an access that does not continue where the previous one on the device ended.
    pub seek: Duration,
    pub bytes_per_s: u64,
}

impl DiskSpeed {
    /// A local NVMe drive.
    pub const NVME: DiskSpeed = DiskSpeed {
        kind: "nvme",
        fsync_min: Duration::from_micros(50),
        fsync_max: Duration::from_micros(800),
        seek: Duration::from_micros(20),
        bytes_per_s: 2_000_000_000,
    };
    /// A SATA SSD (the latencies every scenario used before disks were drawn).
    pub const SATA_SSD: DiskSpeed = DiskSpeed {
        kind: "sata-ssd",
        fsync_min: Duration::from_micros(200),
        fsync_max: Duration::from_millis(3),
        seek: Duration::from_micros(100),
        bytes_per_s: 450_000_000,
    };
    /// A network-attached cloud volume at its provisioned rate.
    pub const CLOUD_VOLUME: DiskSpeed = DiskSpeed {
        kind: "cloud-volume",
        fsync_min: Duration::from_millis(1),
        fsync_max: Duration::from_millis(8),
        seek: Duration::from_millis(1),
        bytes_per_s: 125_000_000,
    };
    /// A busy 7200 rpm spinning disk (the `slow-disk` scenario's fsyncs).
    pub const SPINNING: DiskSpeed = DiskSpeed {
        kind: "spinning",
        fsync_min: Duration::from_millis(5),
        fsync_max: Duration::from_millis(40),
        seek: Duration::from_millis(8),
        bytes_per_s: 100_000_000,
    };
    /// A cloud volume whose burst credits ran out: a few hundred I/Os per second and a few
    /// megabytes per second.
    pub const THROTTLED_VOLUME: DiskSpeed = DiskSpeed {
        kind: "throttled-volume",
        fsync_min: Duration::from_millis(10),
        fsync_max: Duration::from_millis(60),
        seek: Duration::from_millis(10),
        bytes_per_s: 4_000_000,
    };

    /// Every kind, fastest first.
    pub const ALL: [DiskSpeed; 5] = [
        DiskSpeed::NVME,
        DiskSpeed::SATA_SSD,
        DiskSpeed::CLOUD_VOLUME,
        DiskSpeed::SPINNING,
        DiskSpeed::THROTTLED_VOLUME,
    ];

    /// The slow kinds only.
    pub const SLOW: [DiskSpeed; 2] = [DiskSpeed::SPINNING, DiskSpeed::THROTTLED_VOLUME];

    /// The device time of moving `len` bytes, with a seek first or not.
    fn cost(&self, len: usize, seek: bool) -> Duration {
        let transfer = Duration::from_nanos(
            (len as u128 * 1_000_000_000 / self.bytes_per_s.max(1) as u128) as u64,
        );
        if seek {
            self.seek + transfer
        } else {
            transfer
        }
    }
}

/// Draws the disk of `host` from `kinds`, from the run's disk seed alone (one stream per host,
/// so adding a host does not change another's disk).
pub fn draw(disk_seed: u64, host: &str, kinds: &[DiskSpeed]) -> Option<DiskSpeed> {
    if kinds.is_empty() {
        return None;
    }
    let mut rng = crate::random::stream(disk_seed, &format!("disk-speed {host}"));
    Some(kinds[(rng.next_u64() % kinds.len() as u64) as usize])
}

/// The device time a host's disk owes: what reads and writes issued since the last payment
/// take to serve, and where the head stands.
#[derive(Debug)]
pub struct IoQueue {
    speed: DiskSpeed,
    state: Mutex<QueueState>,
}

#[derive(Debug, Default)]
struct QueueState {
    owed: Duration,
    /// The file and offset the last access ended at: an access that continues from there is
    /// sequential and pays no seek.
    head: Option<(String, u64)>,
}

impl IoQueue {
    pub fn new(speed: DiskSpeed) -> IoQueue {
        IoQueue {
            speed,
            state: Mutex::default(),
        }
    }

    pub fn speed(&self) -> DiskSpeed {
        self.speed
    }

    /// Queues an access of `len` bytes of `path` at `offset`.
    pub fn charge(&self, path: &str, offset: u64, len: usize) {
        if len == 0 {
            return;
        }
        let mut st = self.state.lock().expect("io queue poisoned");
        let sequential = st
            .head
            .as_ref()
            .is_some_and(|(p, end)| p == path && *end == offset);
        st.owed += self.speed.cost(len, !sequential);
        match &mut st.head {
            Some((p, end)) if p == path => *end = offset + len as u64,
            head => *head = Some((path.to_string(), offset + len as u64)),
        }
    }

    /// Takes what is owed: the caller waits that long.
    pub fn take(&self) -> Duration {
        std::mem::take(&mut self.state.lock().expect("io queue poisoned").owed)
    }

    /// Forgets what was owed (the host lost power: the queued I/O is gone with it).
    pub fn clear(&self) {
        let mut st = self.state.lock().expect("io queue poisoned");
        st.owed = Duration::ZERO;
        st.head = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_access_pays_no_seek_and_random_access_does() {
        let q = IoQueue::new(DiskSpeed::SPINNING);
        q.charge("wal", 0, 1_000_000);
        q.charge("wal", 1_000_000, 1_000_000);
        assert_eq!(q.take(), Duration::from_millis(8 + 10 + 10));
        q.charge("heap/1", 8192, 8192);
        q.charge("heap/1", 0, 8192);
        let owed = q.take();
        assert!(owed > Duration::from_millis(16), "{owed:?}");
        assert_eq!(q.take(), Duration::ZERO, "taken once");
    }

    #[test]
    fn a_slow_disk_takes_longer_than_a_fast_one_for_the_same_bytes() {
        let (fast, slow) = (
            IoQueue::new(DiskSpeed::NVME),
            IoQueue::new(DiskSpeed::THROTTLED_VOLUME),
        );
        for q in [&fast, &slow] {
            q.charge("base", 0, 4 << 20);
        }
        assert!(slow.take() > fast.take() * 100);
    }

    #[test]
    fn each_host_draws_its_own_disk_the_same_way_every_time() {
        let kinds = DiskSpeed::ALL;
        assert_eq!(draw(7, "sdw1", &kinds), draw(7, "sdw1", &kinds));
        assert_eq!(draw(7, "sdw1", &[]), None);
        let drawn: std::collections::BTreeSet<&str> = (0..200)
            .map(|s| draw(s, "sdw1", &kinds).unwrap().kind)
            .collect();
        assert_eq!(drawn.len(), kinds.len(), "every kind is drawn: {drawn:?}");
    }
}
