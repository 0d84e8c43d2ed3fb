//! PNG grids of images: a batch `[N, C, H, W]` with values in `[−1, 1]` (the range
//! image diffusion models train on) tiled into one picture, written atomically.
//!
//! ```no_run
//! use candle_core::Device;
//! use sbdm_runtime::data::{shapes, ShapesConfig};
//! use sbdm_runtime::report::imgrid::image_grid_png;
//! # fn main() -> sbdm_runtime::error::Result<()> {
//! let cfg = ShapesConfig::default();                           // 16x16 grey
//! let (images, _labels) = shapes(64, &cfg, 0)?;
//! let x = candle_core::Tensor::from_vec(images, (64, 1, 16, 16), &Device::Cpu)?;
//! image_grid_png("shapes.png", &x, 8, 4)?;                     // 8 columns, 4x zoom
//! # Ok(()) }
//! ```

use std::path::Path;

use candle_core::{DType, Tensor};
use plotters::prelude::*;

use crate::error::{invalid, Error, Result};

/// The colour of the gaps between tiles (and of empty cells in the last row).
pub const GAP_RGB: [u8; 3] = [128, 128, 128];

/// The largest grid, in pixels (width × height), that will be drawn.
const MAX_PIXELS: u64 = 1 << 28;

/// Tiles `images` (`[N, C, H, W]`, `C` = 1 or 3, any float dtype, on any device) into an
/// RGB buffer: `min(cols, N)` columns and `⌈N / cols⌉` rows of tiles in row-major order,
/// each image pixel drawn as a `scale × scale` block, tiles separated by one gap pixel
/// of colour [`GAP_RGB`] (no outer border). Values are clamped to `[−1, 1]` and mapped
/// to `round((v + 1)/2 · 255)`; NaN becomes 0. Grey images fill all three channels.
///
/// Returns `(width, height, pixels)` with `pixels` row-major, 3 bytes per pixel:
/// `width = cols·W·scale + cols − 1`, `height = rows·H·scale + rows − 1`.
pub fn grid_rgb(images: &Tensor, cols: usize, scale: usize) -> Result<(u32, u32, Vec<u8>)> {
    let &[n, c, h, w] = images.dims() else {
        return Err(invalid!(
            "image grid: expected images of shape [N, C, H, W], got {:?} (rank {})",
            images.dims(),
            images.rank()
        ));
    };
    if c != 1 && c != 3 {
        return Err(invalid!(
            "image grid: {c} channels in shape {:?}; expected 1 (grey) or 3 (RGB)",
            images.dims()
        ));
    }
    if n == 0 || h == 0 || w == 0 {
        return Err(invalid!(
            "image grid: no pixels to draw in shape {:?}",
            images.dims()
        ));
    }
    if cols == 0 {
        return Err(invalid!("image grid: cols must be at least 1"));
    }
    if scale == 0 {
        return Err(invalid!("image grid: scale must be at least 1"));
    }
    let cols = cols.min(n);
    let rows = n.div_ceil(cols);
    let extent = |tiles: usize, side: usize| -> Option<u64> {
        (tiles as u64)
            .checked_mul(side as u64)?
            .checked_mul(scale as u64)?
            .checked_add(tiles as u64 - 1)
    };
    let (width, height) = match (extent(cols, w), extent(rows, h)) {
        (Some(gw), Some(gh)) if gw.saturating_mul(gh) <= MAX_PIXELS => (gw, gh),
        _ => {
            return Err(invalid!(
                "image grid: {n} images of {h}x{w} in {cols} columns at scale {scale} \
                 exceed {MAX_PIXELS} pixels"
            ))
        }
    };
    let values = images
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let to_byte = |v: f32| -> u8 {
        if v.is_nan() {
            0
        } else {
            ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8
        }
    };
    let (width, height) = (width as usize, height as usize);
    let mut buf: Vec<u8> = GAP_RGB
        .iter()
        .copied()
        .cycle()
        .take(width * height * 3)
        .collect();
    let plane = h * w;
    for (k, img) in values.chunks_exact(c * plane).enumerate() {
        let (tr, tc) = (k / cols, k % cols);
        let (x0, y0) = (tc * (w * scale + 1), tr * (h * scale + 1));
        for i in 0..h {
            for j in 0..w {
                let rgb = if c == 1 {
                    let g = to_byte(img[i * w + j]);
                    [g, g, g]
                } else {
                    [0, 1, 2].map(|ch| to_byte(img[ch * plane + i * w + j]))
                };
                for dy in 0..scale {
                    let row = (y0 + i * scale + dy) * width;
                    for dx in 0..scale {
                        let p = 3 * (row + x0 + j * scale + dx);
                        buf[p..p + 3].copy_from_slice(&rgb);
                    }
                }
            }
        }
    }
    Ok((width as u32, height as u32, buf))
}

/// Writes [`grid_rgb`]`(images, cols, scale)` as a PNG at `dest`, atomically (a
/// temporary file beside it, renamed over it once complete).
pub fn image_grid_png(
    dest: impl AsRef<Path>,
    images: &Tensor,
    cols: usize,
    scale: usize,
) -> Result<()> {
    let (width, height, pixels) = grid_rgb(images, cols, scale)?;
    let dest = dest.as_ref();
    crate::io::write_atomic(dest, |tmp| {
        let draw_error = |e: String| Error::Format {
            path: dest.display().to_string(),
            message: format!("cannot draw the image grid: {e}"),
        };
        let mut backend = BitMapBackend::new(tmp, (width, height));
        backend
            .blit_bitmap((0, 0), (width, height), &pixels)
            .map_err(|e| draw_error(e.to_string()))?;
        backend.present().map_err(|e| draw_error(e.to_string()))?;
        Ok(())
    })
}

/// Side-by-side columns of images: row `i` of the grid shows image `i` of every batch in
/// `columns` (each `[N, C, H, W]`, the same shape), for the first `rows` images — e.g.
/// source | SDEdit | ILVR | EGSDE. Written as [`image_grid_png`] writes.
pub fn columns_png(
    dest: impl AsRef<Path>,
    columns: &[&Tensor],
    rows: usize,
    scale: usize,
) -> Result<()> {
    let Some(first) = columns.first() else {
        return Err(invalid!("image columns: no columns"));
    };
    if let Some(c) = columns.iter().find(|c| c.dims() != first.dims()) {
        return Err(invalid!(
            "image columns: shapes {:?} and {:?} differ",
            first.dims(),
            c.dims()
        ));
    }
    let rows = rows.min(first.dim(0)?);
    let taken = columns
        .iter()
        .map(|c| Ok(c.narrow(0, 0, rows)?.to_dtype(DType::F32)?.unsqueeze(1)?))
        .collect::<Result<Vec<_>>>()?;
    let mut dims = first.dims().to_vec();
    dims[0] = rows * columns.len();
    let tiles = Tensor::cat(&taken, 1)?.reshape(dims)?;
    image_grid_png(dest, &tiles, columns.len(), scale)
}
