//! The example policy sets under `policies/` validate against their saved catalogs and their
//! decision tables pass: the same check `mcp-warden policy test` runs.

use std::fs;
use std::path::Path;

use super::{BuildMode, Engine, PolicySource, TableFile, parse_catalog, run_tables};

fn files(dir: &Path, ext: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .map(|p| {
            (
                p.display().to_string(),
                fs::read_to_string(&p).unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn example_policy_sets_pass_their_tables() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut sets = 0;
    for set in fs::read_dir(&root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
    {
        let policies: Vec<PolicySource> = files(&set, "cedar")
            .into_iter()
            .map(|(file, text)| PolicySource { file, text })
            .collect();
        let catalog =
            fs::read_to_string(set.join("tools.json")).unwrap_or_else(|_| "[]".to_owned());
        let tools = match parse_catalog(&catalog) {
            Ok(t) => t,
            Err(e) => panic!("{}: {e}", set.display()),
        };
        let engine = match Engine::build(&policies, &tools, &[], BuildMode::Strict) {
            Ok(e) => e,
            Err(errors) => panic!("{}: {errors:#?}", set.display()),
        };
        let tables: Vec<TableFile> = files(&set.join("tests"), "toml")
            .into_iter()
            .map(|(file, text)| TableFile { file, text })
            .collect();
        let report = run_tables(&engine, &tables);
        println!("{report}");
        assert_eq!(report.failed(), 0, "{report}");
        assert!(report.passed() > 0, "{}: no cases", set.display());
        let coverage = report.coverage(&engine);
        assert!(coverage.missed.is_empty(), "{}: {coverage}", set.display());
        sets += 1;
    }
    assert!(sets > 0, "no example sets under {}", root.display());
}
