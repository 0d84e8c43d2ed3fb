//! Seeded weight initialisation.
//!
//! candle's CPU RNG cannot be seeded, so candle-nn's initialisers are not reproducible.
//! [`seeded_varbuilder`] returns a [`VarBuilder`] over a [`VarMap`] that creates each
//! missing variable from candle-nn's [`Init`] hint with a ChaCha8 stream keyed by the
//! seed and the variable's full name: a weight depends only on `(seed, name)`, never on
//! the order in which layers are built, and matches candle-nn's distributions (the same
//! gains and fans as PyTorch).
//!
//! ```
//! use candle_core::{DType, Device};
//! use candle_nn::VarMap;
//! use sbdm_runtime::nn::seeded_varbuilder;
//! # fn main() -> candle_core::Result<()> {
//! let varmap = VarMap::new();
//! let vb = seeded_varbuilder(&varmap, 7, DType::F32, &Device::Cpu);
//! let layer = candle_nn::linear(3, 4, vb.pp("layer"))?; // weight [4, 3], bias [4]
//! assert_eq!(varmap.all_vars().len(), 2);
//! # let _ = layer;
//! # Ok(()) }
//! ```

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// A [`VarBuilder`] whose missing variables are created deterministically from `seed`
/// and their names, and inserted into `varmap`; existing variables are returned as they
/// are (a shape mismatch is an error naming the variable).
pub fn seeded_varbuilder(
    varmap: &VarMap,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> VarBuilder<'static> {
    let backend = SeededBackend {
        varmap: varmap.clone(),
        seed,
    };
    VarBuilder::from_backend(Box::new(backend), dtype, device.clone())
}

/// The FNV-1a 64-bit hash of `s`.
fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The random stream of the variable `name` under `seed`: the ChaCha key holds the seed
/// and the name's hash side by side, so distinct `(seed, name)` pairs never collide by
/// arithmetic accident.
fn stream(seed: u64, name: &str) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&fnv1a(name).to_le_bytes());
    key[16..24].copy_from_slice(&(name.len() as u64).to_le_bytes());
    ChaCha8Rng::from_seed(key)
}

/// Draws a tensor of `shape` from the init hint `init` with the stream of
/// `(seed, name)`, following `candle_nn::Init::var`'s formulas.
fn draw(shape: &Shape, init: Init, seed: u64, name: &str) -> Vec<f64> {
    let n = shape.elem_count();
    let mut rng = stream(seed, name);
    let mut normal = |mean: f64, std: f64| -> Vec<f64> {
        (0..n)
            .map(|_| {
                let z: f64 = StandardNormal.sample(&mut rng);
                mean + std * z
            })
            .collect()
    };
    let uniform = |lo: f64, up: f64| -> Vec<f64> {
        let mut rng = stream(seed, name);
        (0..n)
            .map(|_| lo + (up - lo) * rng.random::<f64>())
            .collect()
    };
    match init {
        Init::Const(v) => vec![v; n],
        Init::Randn { mean, stdev } => normal(mean, stdev),
        Init::Uniform { lo, up } => uniform(lo, up),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let fan = fan.for_shape(shape);
            let std = non_linearity.gain() / (fan as f64).sqrt();
            match dist {
                NormalOrUniform::Normal => normal(0.0, std),
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    uniform(-bound, bound)
                }
            }
        }
    }
}

/// A [`SimpleBackend`] over a [`VarMap`] that creates missing variables from a seed.
struct SeededBackend {
    varmap: VarMap,
    seed: u64,
}

impl SimpleBackend for SeededBackend {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut data = self.varmap.data().lock().unwrap();
        if let Some(var) = data.get(name) {
            if var.shape() != &s {
                candle_core::bail!(
                    "shape mismatch for {name}: expected {:?} got {:?}",
                    s.dims(),
                    var.dims()
                );
            }
            return Ok(var.as_tensor().clone());
        }
        let values = draw(&s, h, self.seed, name);
        let t = Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        let data = self.varmap.data().lock().unwrap();
        match data.get(name) {
            Some(var) if var.dtype() == dtype && var.device().same_device(dev) => {
                Ok(var.as_tensor().clone())
            }
            Some(var) => var.as_tensor().to_device(dev)?.to_dtype(dtype),
            None => candle_core::bail!("cannot find variable {name}"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap.data().lock().unwrap().contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::init::{FanInOut, NonLinearity};

    fn moments(v: &[f64]) -> (f64, f64) {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
        (m, var.sqrt())
    }

    #[test]
    fn fnv1a_reference_values() {
        // The published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn kaiming_matches_candle_formulas() {
        // weight [out 64, in 128, 3, 3]: fan_in = 128·9, fan_out = 64·9.
        let shape = Shape::from((64, 128, 3, 3));
        let normal = Init::Kaiming {
            dist: NormalOrUniform::Normal,
            fan: FanInOut::FanIn,
            non_linearity: NonLinearity::ReLU,
        };
        let (m, s) = moments(&draw(&shape, normal, 1, "w"));
        let want = 2f64.sqrt() / (128.0f64 * 9.0).sqrt();
        assert!(
            m.abs() < 0.01 * want * 10.0 && (s / want - 1.0).abs() < 0.02,
            "{m} {s}"
        );

        let uniform = Init::Kaiming {
            dist: NormalOrUniform::Uniform,
            fan: FanInOut::FanOut,
            non_linearity: NonLinearity::Tanh,
        };
        let v = draw(&shape, uniform, 1, "w");
        let std = 5.0 / 3.0 / (64.0f64 * 9.0).sqrt();
        let bound = 3f64.sqrt() * std;
        assert!(v.iter().all(|x| x.abs() <= bound));
        let (_, s) = moments(&v);
        assert!((s / std - 1.0).abs() < 0.02, "{s} {std}");
    }

    #[test]
    fn other_hints() {
        let shape = Shape::from(10_000);
        assert!(draw(&shape, Init::Const(2.5), 0, "c")
            .iter()
            .all(|&x| x == 2.5));
        let u = draw(&shape, Init::Uniform { lo: -1.0, up: 3.0 }, 0, "u");
        assert!(u.iter().all(|&x| (-1.0..3.0).contains(&x)));
        let (m, _) = moments(&u);
        assert!((m - 1.0).abs() < 0.05, "{m}");
        let r = draw(
            &shape,
            Init::Randn {
                mean: 5.0,
                stdev: 0.5,
            },
            0,
            "r",
        );
        let (m, s) = moments(&r);
        assert!((m - 5.0).abs() < 0.02 && (s - 0.5).abs() < 0.02, "{m} {s}");
    }

    #[test]
    fn weights_depend_on_seed_and_name_only() -> Result<()> {
        let dev = Device::Cpu;
        let build = |seed: u64, order: &[&str]| -> Result<Vec<(String, Vec<f32>)>> {
            let vm = VarMap::new();
            let vb = seeded_varbuilder(&vm, seed, DType::F32, &dev);
            for name in order {
                candle_nn::linear(5, 7, vb.pp(name))?;
            }
            let mut all: Vec<_> = vm
                .data()
                .lock()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.flatten_all().unwrap().to_vec1().unwrap()))
                .collect();
            all.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(all)
        };
        let a = build(3, &["a", "b"])?;
        let b = build(3, &["b", "a"])?;
        assert_eq!(a, b);
        let c = build(4, &["a", "b"])?;
        assert_eq!(a.len(), c.len());
        for (x, y) in a.iter().zip(&c) {
            assert_ne!(x.1, y.1, "{}", x.0);
        }
        // Two layers under one seed differ from each other.
        assert_ne!(a[0].1, a[2].1);
        Ok(())
    }

    #[test]
    fn existing_vars_are_reused_and_shapes_checked() -> Result<()> {
        let dev = Device::Cpu;
        let vm = VarMap::new();
        let vb = seeded_varbuilder(&vm, 0, DType::F32, &dev);
        let l1 = candle_nn::linear(5, 7, vb.pp("l"))?;
        let vb2 = seeded_varbuilder(&vm, 99, DType::F32, &dev);
        let l2 = candle_nn::linear(5, 7, vb2.pp("l"))?;
        // The same Var, not a copy: the tensors share their id.
        assert_eq!(l1.weight().id(), l2.weight().id());
        let err = candle_nn::linear(6, 7, vb2.pp("l"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("shape mismatch for l.weight"), "{err}");
        Ok(())
    }
}
