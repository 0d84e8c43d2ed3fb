//! Line plots, EMA smoothing and panel grids.

use sbdm_runtime::report::plot::{
    line_png, panels_png, panels_rgb, smooth, LineSeries, Mark, Panel, Series,
};

/// The PNG signature and `(width, height)` from the IHDR chunk of the file at `path`.
fn png_size(path: &std::path::Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.len() > 33,
        "{} is too short for a PNG",
        path.display()
    );
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR", "the first chunk is not IHDR");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

/// A deterministic cloud of `n` points around `(cx, cy)`, spread ±`r`.
fn cloud(label: &str, n: usize, (cx, cy): (f64, f64), r: f64) -> Series {
    let points = (0..n)
        .map(|i| {
            let u = ((i * 7919) % 1009) as f64 / 1009.0 - 0.5;
            let v = ((i * 104_729) % 1013) as f64 / 1013.0 - 0.5;
            [cx + 2.0 * r * u, cy + 2.0 * r * v]
        })
        .collect();
    Series {
        label: label.into(),
        points,
        mark: Mark::Dot,
    }
}

fn scatter(title: &str, series: Vec<Series>) -> Panel {
    Panel::Scatter {
        title: title.into(),
        series,
        range: None,
    }
}

fn loss_curve(n: usize) -> Vec<(f64, f64)> {
    (0..n)
        .map(|s| {
            let noise = ((s * 7919) % 101) as f64 / 1000.0;
            (s as f64, 1.0 / (1.0 + 0.01 * s as f64) + noise)
        })
        .collect()
}

fn lines(log_y: bool, points: Vec<(f64, f64)>) -> Panel {
    Panel::Lines {
        title: "loss".into(),
        x_label: "step".into(),
        y_label: "loss".into(),
        series: vec![LineSeries {
            label: "loss".into(),
            points,
            color: (200, 30, 30),
        }],
        log_y,
    }
}

/// How many pixels of the `(x, y, w, h)` rectangle of an RGB image satisfy `pred`.
fn count(
    (width, _, px): &(u32, u32, Vec<u8>),
    (x, y, w, h): (u32, u32, u32, u32),
    pred: impl Fn(u8, u8, u8) -> bool,
) -> usize {
    let mut n = 0;
    for row in y..y + h {
        for col in x..x + w {
            let i = 3 * (row * width + col) as usize;
            n += usize::from(pred(px[i], px[i + 1], px[i + 2]));
        }
    }
    n
}

/// Blue-ish: the first series colour (31, 119, 180), blended over white.
fn bluish(r: u8, _g: u8, b: u8) -> bool {
    i32::from(b) - i32::from(r) > 25
}

/// Red-ish: the line colour (200, 30, 30) used by [`lines`].
fn reddish(r: u8, g: u8, b: u8) -> bool {
    i32::from(r) - i32::from(g) > 60 && i32::from(r) - i32::from(b) > 60
}

#[test]
fn panel_grid_png_has_cols_by_rows_panels() {
    let dir = tempfile::tempdir().unwrap();
    let panels = vec![
        scatter("data", vec![cloud("data", 4096, (0.0, 0.0), 1.0)]),
        scatter("euler", vec![cloud("euler", 4096, (0.5, 0.0), 1.2)]),
        scatter("heun", vec![cloud("heun", 4096, (0.0, 0.5), 0.8)]),
        scatter("ode", vec![cloud("ode", 4096, (0.0, 0.0), 1.0)]),
        lines(true, loss_curve(500)),
    ];
    let dest = dir.path().join("compare.png");
    panels_png(&dest, &panels, 3, 200).unwrap();
    assert_eq!(png_size(&dest), (3 * 200, 2 * 200));
    // Written atomically: nothing else is left in the directory.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["compare.png"]);
    // The in-memory rendering has the same size.
    let (w, h, px) = panels_rgb(&panels, 2, 150).unwrap();
    assert_eq!((w, h, px.len()), (300, 450, 300 * 450 * 3));
}

#[test]
fn a_scatter_panel_draws_its_points() {
    let panels = [scatter("cluster", vec![cloud("c", 4096, (3.0, -2.0), 0.5)])];
    let img = panels_rgb(&panels, 1, 300).unwrap();
    assert_eq!((img.0, img.1), (300, 300));
    // The cluster fills the shared range, so the middle of the panel is mostly dots.
    let centre = (110, 110, 80, 80);
    let dots = count(&img, centre, bluish);
    assert!(
        dots > 80 * 80 / 4,
        "only {dots} of 6400 centre pixels are drawn"
    );
    // And the background is white where nothing is drawn (the top-left corner).
    assert_eq!(
        count(&img, (0, 0, 4, 4), |r, g, b| (r, g, b) == (255, 255, 255)),
        16
    );
    // A panel with its own range away from the points shows none of them.
    let away = [Panel::Scatter {
        title: "elsewhere".into(),
        series: vec![cloud("c", 4096, (3.0, -2.0), 0.5)],
        range: Some(((10.0, 12.0), (10.0, 12.0))),
    }];
    let empty = panels_rgb(&away, 1, 300).unwrap();
    assert_eq!(count(&empty, (0, 0, 300, 300), bluish), 0);
}

#[test]
fn scatter_panels_share_a_range() {
    // Two clusters far apart in two panels: with a shared range each covers only a part
    // of its panel, so neither panel's centre region is filled as a lone cluster's is.
    let panels = [
        scatter("left", vec![cloud("l", 4096, (-10.0, 0.0), 0.5)]),
        scatter("right", vec![cloud("r", 4096, (10.0, 0.0), 0.5)]),
    ];
    let img = panels_rgb(&panels, 2, 300).unwrap();
    let left = count(&img, (0, 0, 300, 300), bluish);
    let right = count(&img, (300, 0, 300, 300), bluish);
    assert!(left > 0 && right > 0, "{left} {right}");
    // The left cluster sits in the left part of its panel, the right in the right part
    // (each panel on a range of its own would centre its cluster).
    let halves = |x0: u32| {
        let (a, b) = (
            count(&img, (x0, 0, 150, 300), bluish),
            count(&img, (x0 + 150, 0, 150, 300), bluish),
        );
        (a, b)
    };
    let (ll, lr) = halves(0);
    let (rl, rr) = halves(300);
    assert!(
        ll > 10 * lr && rr > 10 * rl,
        "left panel {ll}|{lr}, right panel {rl}|{rr}"
    );
    // Alone, a cluster fills its panel's centre.
    let alone = panels_rgb(&panels[..1], 1, 300).unwrap();
    assert!(count(&alone, (0, 0, 300, 300), bluish) > 3 * left);
}

#[test]
fn line_png_is_a_png_and_all_nan_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let raw = loss_curve(1000);
    let series = [
        LineSeries {
            label: "loss".into(),
            points: raw.clone(),
            color: (170, 200, 235),
        },
        LineSeries {
            label: "EMA".into(),
            points: smooth(&raw, 0.02),
            color: (20, 60, 140),
        },
    ];
    let dest = dir.path().join("loss.png");
    line_png(&dest, "training", "step", "loss", &series, false).unwrap();
    assert_eq!(png_size(&dest), (800, 600));

    let nan = [LineSeries {
        label: "loss".into(),
        points: vec![(0.0, f64::NAN), (1.0, f64::NAN), (f64::INFINITY, 1.0)],
        color: (0, 0, 0),
    }];
    let bad = dir.path().join("nan.png");
    let msg = line_png(&bad, "training", "step", "loss", &nan, false)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("no points to plot") && msg.contains("non-finite"),
        "{msg}"
    );
    assert!(msg.contains("training"), "{msg}");
    assert!(!bad.exists());
    // No series at all is the same error.
    let msg = line_png(&bad, "", "step", "loss", &[], false)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no points to plot"), "{msg}");
    // In a grid too, naming the panel.
    let msg = panels_png(&bad, &[lines(false, vec![(0.0, f64::NAN)])], 1, 200)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("line panel 'loss'") && msg.contains("no points"),
        "{msg}"
    );
    assert!(!bad.exists());
}

#[test]
fn log_y_skips_non_positive_points_and_plots_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut pts = loss_curve(200);
    pts[0].1 = 0.0;
    pts[1].1 = -1.0;
    pts[2].1 = f64::NAN;
    let series = [LineSeries {
        label: "loss".into(),
        points: pts.clone(),
        color: (200, 30, 30),
    }];
    let dest = dir.path().join("log.png");
    line_png(&dest, "log", "step", "loss", &series, true).unwrap();
    assert_eq!(png_size(&dest), (800, 600));
    // The rest is drawn: the line's colour appears.
    let img = panels_rgb(&[lines(true, pts)], 1, 300).unwrap();
    let drawn = count(&img, (0, 0, 300, 300), reddish);
    assert!(drawn > 50, "only {drawn} line pixels");
    // Only non-positive points: nothing left, and the message says why.
    let non_pos = [LineSeries {
        label: "loss".into(),
        points: vec![(0.0, 0.0), (1.0, -2.0)],
        color: (0, 0, 0),
    }];
    let msg = line_png(
        dir.path().join("x.png"),
        "log",
        "step",
        "loss",
        &non_pos,
        true,
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("not positive") && msg.contains("log"), "{msg}");
    // On a linear axis the same points plot fine.
    line_png(
        dir.path().join("lin.png"),
        "lin",
        "step",
        "loss",
        &non_pos,
        false,
    )
    .unwrap();
}

#[test]
fn smooth_keeps_constants_and_follows_steps() {
    let constant: Vec<_> = (0..100).map(|i| (i as f64, 2.5)).collect();
    let s = smooth(&constant, 0.1);
    assert_eq!(s.len(), 100);
    for (a, b) in s.iter().zip(&constant) {
        assert_eq!(a.0, b.0);
        assert!((a.1 - 2.5).abs() < 1e-12, "{a:?}");
    }
    // Bias-corrected: the first output is the first input, not alpha times it.
    assert!((smooth(&[(0.0, 4.0)], 0.01)[0].1 - 4.0).abs() < 1e-12);
    // A step from 0 to 1 at i = 50: lags behind, then converges, monotonically.
    let step: Vec<_> = (0..400)
        .map(|i| (i as f64, if i < 50 { 0.0 } else { 1.0 }))
        .collect();
    let s = smooth(&step, 0.05);
    assert!(s[..50].iter().all(|p| p.1 == 0.0));
    assert!(s[50].1 > 0.0 && s[50].1 < 0.1, "{:?}", s[50]);
    assert!(s.windows(2).all(|w| w[1].1 >= w[0].1));
    assert!((s[399].1 - 1.0).abs() < 1e-6, "{:?}", s[399]);
    // alpha = 1 is the identity; non-finite points are left out, not propagated.
    assert_eq!(smooth(&step, 1.0), step);
    let with_nan = [(0.0, 1.0), (1.0, f64::NAN), (2.0, 1.0)];
    assert_eq!(smooth(&with_nan, 0.3), [(0.0, 1.0), (2.0, 1.0)]);
}

#[test]
fn bad_grids_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("g.png");
    let one = [scatter("a", vec![cloud("a", 10, (0.0, 0.0), 1.0)])];
    for (panels, cols, px) in [
        (&one[..], 0, 200),
        (&[][..], 2, 200),
        (&one[..], 1, 10),
        (&one[..], 1000, 200),
    ] {
        let msg = panels_png(&dest, panels, cols, px).unwrap_err().to_string();
        assert!(msg.contains("panel"), "{msg}");
    }
    // All scatter points non-finite: no common range.
    let nan = [scatter(
        "nan",
        vec![Series {
            label: "x".into(),
            points: vec![[f64::NAN, 0.0]],
            mark: Mark::Dot,
        }],
    )];
    let msg = panels_png(&dest, &nan, 1, 200).unwrap_err().to_string();
    assert!(msg.contains("no finite point"), "{msg}");
    // An explicit range must be sensible.
    let bad_range = [Panel::Scatter {
        title: "r".into(),
        series: vec![],
        range: Some(((1.0, 0.0), (0.0, 1.0))),
    }];
    let msg = panels_png(&dest, &bad_range, 1, 200)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("min < max"), "{msg}");
    assert!(!dest.exists());
}
