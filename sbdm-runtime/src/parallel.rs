//! Independent rows of work split over the machine's cores with scoped threads.
//!
//! The `sbdm` binaries keep candle's rayon pool at one thread
//! ([`crate::train::prefer_batch_parallelism`]: single-threaded matmuls on parts of a
//! batch beat candle's 2-thread matmul here), so the row-parallel paths — network
//! evaluation, training steps, the exact mixture oracle — start their own threads.
//! How many: [`set_threads`] if called, else `SBDM_THREADS=N` (read once per process),
//! else the machine's cores. `sbdm bench sample` sets it to measure 1-thread against
//! 2-thread speed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use crate::error::{invalid, Error, Result};

/// Set by [`set_threads`]; 0: not set.
static THREADS_SET: AtomicUsize = AtomicUsize::new(0);

/// Makes the row-parallel paths use `threads` threads from now on (`None`: back to
/// `SBDM_THREADS` or the machine's cores). Zero counts as one.
pub fn set_threads(threads: Option<usize>) {
    THREADS_SET.store(threads.map_or(0, |n| n.max(1)), Ordering::Relaxed);
}

/// How many threads the row-parallel paths use: the number given to [`set_threads`],
/// else `SBDM_THREADS` if set to a positive number, else the machine's available
/// parallelism.
pub fn threads() -> usize {
    match THREADS_SET.load(Ordering::Relaxed) {
        0 => default_threads(),
        n => n,
    }
}

/// `SBDM_THREADS` or the machine's cores, read once.
fn default_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |p| p.get());
        std::env::var("SBDM_THREADS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(cores)
    })
}

/// How many parts to split `rows` rows into so that each part has at least `min_rows`
/// (below that, starting a thread costs more than it saves): between 1 and [`threads`].
pub fn parts_for(rows: usize, min_rows: usize) -> usize {
    threads().min(rows / min_rows.max(1)).max(1)
}

/// [`parts_for`] for rows of `width` values each costing about the same: at least
/// `min_values` values a part (whole rows).
pub fn parts_for_values(rows: usize, width: usize, min_values: usize) -> usize {
    parts_for(rows, min_values.div_ceil(width.max(1)))
}

/// The row range `[start, end)` of part `i` of `parts` over `rows` rows (sizes differ by
/// at most one).
pub fn part_range(i: usize, parts: usize, rows: usize) -> (usize, usize) {
    (i * rows / parts, (i + 1) * rows / parts)
}

/// Runs `f(0), …, f(n − 1)`, the first on this thread and the others on scoped threads,
/// and returns their results in order, or the first error in that order. A panicked
/// thread counts as the error "a `what` thread panicked".
///
/// For work that runs candle ops (network parts, training chunks): on scoped threads,
/// not on [`fill_rows`]'s pool, because candle's own parallel loops would run on the
/// rayon pool of the thread that calls them and so spread over the pool's threads too.
pub fn run_parts<T: Send>(
    n: usize,
    what: &str,
    f: impl Fn(usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (1..n).map(|i| scope.spawn(move || f(i))).collect();
        let mut v = vec![f(0)];
        for h in handles {
            v.push(
                h.join()
                    .unwrap_or_else(|_| Err::<T, Error>(invalid!("a {what} thread panicked"))),
            );
        }
        v
    })
    .into_iter()
    .collect()
}

/// The pool of [`threads`] threads kept for [`fill_rows`] (built on first use; rebuilt
/// when the thread count changes). Separate from rayon's global pool, which candle uses
/// and the binaries keep at one thread.
fn pool(threads: usize) -> Result<std::sync::Arc<rayon::ThreadPool>> {
    use std::sync::{Arc, Mutex};
    static POOL: Mutex<Option<Arc<rayon::ThreadPool>>> = Mutex::new(None);
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = pool.as_ref().filter(|p| p.current_num_threads() == threads) {
        return Ok(p.clone());
    }
    let built = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("sbdm-rows-{i}"))
        .build()
        .map_err(|e| invalid!("cannot start {threads} worker threads: {e}"))?;
    let built = Arc::new(built);
    *pool = Some(built.clone());
    Ok(built)
}

/// Fills `out`, rows of `width` values, in `parts` contiguous parts on the kept pool of
/// threads: `f(first_row, rows)` fills the rows `first_row..first_row + rows.len() / width`.
/// `f` must not itself start parallel work on the pool. A panic in `f` is an error naming
/// `what`.
pub fn fill_rows<T: Send>(
    out: &mut [T],
    width: usize,
    parts: usize,
    what: &str,
    f: impl Fn(usize, &mut [T]) + Sync,
) -> Result<()> {
    fill_rows_with(out, width, &mut [(); 0], parts, what, |first, rows, _| {
        f(first, rows)
    })
}

/// [`fill_rows`] with per-row state: `state[i]` belongs to row `i` of `out` and goes to
/// the same part (e.g. each row's random stream): `f(first_row, rows, states)`. An empty
/// `state` gives every part an empty slice.
pub fn fill_rows_with<T: Send, S: Send>(
    out: &mut [T],
    width: usize,
    state: &mut [S],
    parts: usize,
    what: &str,
    f: impl Fn(usize, &mut [T], &mut [S]) + Sync,
) -> Result<()> {
    let rows = out.len() / width.max(1);
    let per_row_state = !state.is_empty();
    if per_row_state && state.len() != rows {
        return Err(invalid!("{what}: {} states for {rows} rows", state.len()));
    }
    if parts <= 1 || rows == 0 {
        f(0, out, state);
        return Ok(());
    }
    let mut chunks = Vec::with_capacity(parts);
    let (mut rest, mut rest_state) = (out, state);
    for i in 0..parts {
        let (s, e) = part_range(i, parts, rows);
        let (head, tail) = rest.split_at_mut((e - s) * width);
        let (state_head, state_tail) = if per_row_state {
            rest_state.split_at_mut(e - s)
        } else {
            rest_state.split_at_mut(0)
        };
        chunks.push((s, head, state_head));
        rest = tail;
        rest_state = state_tail;
    }
    let pool = pool(threads())?;
    let f = &f;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.scope(|scope| {
            for (s, chunk, state) in chunks {
                scope.spawn(move |_| f(s, chunk, state));
            }
        })
    }))
    .map_err(|_| invalid!("a {what} thread panicked"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row filled once, with its own state, whatever the split.
    #[test]
    fn rows_and_their_states_go_together() {
        for parts in [1, 2, 3, 7] {
            let mut out = vec![0u64; 3 * 100];
            let mut state: Vec<u64> = (0..100).map(|i| 1000 + i).collect();
            fill_rows_with(&mut out, 3, &mut state, parts, "test", |first, rows, st| {
                for (i, (row, s)) in rows.chunks_exact_mut(3).zip(st.iter_mut()).enumerate() {
                    row.fill((first + i) as u64 * 10_000 + *s);
                    *s += 1;
                }
            })
            .unwrap();
            for (i, row) in out.chunks_exact(3).enumerate() {
                assert_eq!(
                    row,
                    [i as u64 * 10_000 + 1000 + i as u64; 3],
                    "parts {parts}"
                );
            }
            assert!(state.iter().enumerate().all(|(i, s)| *s == 1001 + i as u64));
        }
        let mut out = vec![0u8; 6];
        let e = fill_rows_with(&mut out, 3, &mut [0u8; 3], 2, "test", |_, _, _| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 states for 2 rows"), "{e}");
        let e = fill_rows(&mut out, 3, 2, "test", |_, _| panic!("boom"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("a test thread panicked"), "{e}");
    }
}
