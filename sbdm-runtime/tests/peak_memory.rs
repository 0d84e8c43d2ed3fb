//! Peak heap of sampling (issue 10, goal 6): the batch is held at most twice while a
//! first-order sampler runs in x_T's own storage (the state and the model's output),
//! and that peak does not grow with the number of steps. Counted by a global allocator
//! that records the largest number of bytes live at once, so the figure is exact and
//! the same on every machine (RSS adds the allocator's and the binary's own pages:
//! docs/benchmarks.md). One test in this binary, so no other test's allocations count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::Device;
use sbdm_runtime::model::mixture::GaussianMixture;
use sbdm_runtime::sampling::{Noise, Sampler, TimeGrid};
use sbdm_runtime::sde::builtin::VpSde;

/// The system allocator, counting live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// A global allocator is an unsafe trait; this one only forwards and counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(live, Ordering::SeqCst);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes allocated at the peak of `f`, above what was live when it started.
fn peak_of(f: impl FnOnce()) -> usize {
    let before = LIVE.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    f();
    PEAK.load(Ordering::SeqCst) - before
}

#[test]
fn sampling_in_place_holds_the_batch_twice_whatever_the_steps() {
    let sde = VpSde::default();
    let mix = GaussianMixture::ring(8, 4.0, 0.5).unwrap();
    let model = mix.model(&sde);
    let (n, dev) = (100_000, Device::Cpu);
    let state = n * 2 * 4; // f32 [n, 2]
                           // Warm the kept pool of threads and the mixture's tables first: what they hold is
                           // not per batch.
    let x_t = Noise::new(0, 0, 64, &[2], &dev).draw().unwrap();
    let mut noise = Noise::new(0, 1, 64, &[2], &dev);
    Sampler::Ddim { eta: 0.0 }
        .sample_in_place(&sde, &model, x_t, &TimeGrid::uniform(2), &mut noise)
        .unwrap();
    for (sampler, steps) in [
        (Sampler::Ddim { eta: 0.0 }, 10),
        (Sampler::Ddim { eta: 0.0 }, 200),
        (Sampler::OdeEuler, 50),
    ] {
        let mut noise = Noise::new(0, 1, n, &[2], &dev);
        let x_t = Noise::new(0, 0, n, &[2], &dev).draw().unwrap();
        let peak = peak_of(|| {
            let out = sampler
                .sample_in_place(&sde, &model, x_t, &TimeGrid::uniform(steps), &mut noise)
                .unwrap();
            drop(out);
        });
        // The state (x_T's storage) was live before; the model's output is the one new
        // batch, plus O(1) work buffers (64 KiB allowed).
        let extra = peak as f64 / state as f64;
        assert!(
            peak <= state + (64 << 10),
            "{sampler}, {steps} steps: peak {peak} B above the state = {extra:.2} x the state ({state} B)"
        );
    }
}
