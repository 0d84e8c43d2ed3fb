//! `docs/derivations.md` is generated from the built-ins; this test fails when it is stale.
//! Regenerate with `SBDM_UPDATE_DOCS=1 cargo test --test docs`.

use std::path::Path;

#[test]
fn derivations_page_is_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/derivations.md");
    let want = sbdm::builtin::derivations_markdown();
    if std::env::var_os("SBDM_UPDATE_DOCS").is_some() {
        let tmp = path.with_extension("md.tmp");
        std::fs::write(&tmp, &want).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/derivations.md is stale: run `SBDM_UPDATE_DOCS=1 cargo test --test docs`"
    );
}
