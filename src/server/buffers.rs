//! Pooled I/O buffers. Connections hold a buffer only while bytes are in flight, so an
//! idle keep-alive connection costs no buffer memory; freed buffers are kept for reuse up
//! to a bound so that a burst does not leave the heap fragmented forever.

pub const RX_SIZE: usize = 16 * 1024;
const KEEP: usize = 64;

#[derive(Default)]
pub struct Pool {
    rx: Vec<Box<[u8]>>,
    tx: Vec<Vec<u8>>,
}

impl Pool {
    pub fn rx(&mut self) -> Box<[u8]> {
        self.rx
            .pop()
            .unwrap_or_else(|| vec![0u8; RX_SIZE].into_boxed_slice())
    }

    pub fn tx(&mut self) -> Vec<u8> {
        self.tx.pop().unwrap_or_else(|| Vec::with_capacity(4096))
    }

    pub fn put_rx(&mut self, buf: Box<[u8]>) {
        if self.rx.len() < KEEP {
            self.rx.push(buf);
        }
    }

    pub fn put_tx(&mut self, mut buf: Vec<u8>) {
        // A stats page or a long pipeline may have grown it; do not keep big ones around.
        if self.tx.len() < KEEP && buf.capacity() <= 64 * 1024 {
            buf.clear();
            self.tx.push(buf);
        }
    }
}

impl Pool {
    /// After a burst: hand every pooled buffer back to the allocator (up to 64 receive
    /// buffers of 16 kB and 64 send buffers of up to 64 kB would otherwise stay).
    pub fn release(&mut self) {
        self.rx = Vec::new();
        self.tx = Vec::new();
    }
}

/// Received bytes not yet consumed: `buf[start..end]`.
pub struct RxBuf {
    pub buf: Box<[u8]>,
    pub start: usize,
    pub end: usize,
}

impl RxBuf {
    pub fn new(buf: Box<[u8]>) -> RxBuf {
        RxBuf {
            buf,
            start: 0,
            end: 0,
        }
    }

    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Free space at the end, moving unconsumed bytes to the front when that makes room.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_empties_the_pool() {
        let mut pool = Pool::default();
        let (rx, tx) = (pool.rx(), pool.tx());
        pool.put_rx(rx);
        pool.put_tx(tx);
        assert_eq!((pool.rx.len(), pool.tx.len()), (1, 1));
        pool.release();
        assert_eq!((pool.rx.capacity(), pool.tx.capacity()), (0, 0));
    }

    #[test]
    fn rx_compacts_when_full() {
        let mut rx = RxBuf::new(vec![0u8; 8].into_boxed_slice());
        rx.spare()[..8].copy_from_slice(b"abcdefgh");
        rx.filled(8);
        rx.consume(5);
        assert_eq!(rx.data(), b"fgh");
        assert_eq!(rx.spare().len(), 5);
        assert_eq!(rx.data(), b"fgh");
        rx.consume(3);
        assert!(rx.is_empty());
        assert_eq!(rx.spare().len(), 8);
    }
}
