//! Garbage, huge and pathological inputs are refused with located diagnostics, never a panic
//! or a stack overflow.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use hermes_stack::{LoadError, load_str};

/// Loads `source` on a thread with a deliberately small stack, so that unbounded recursion
/// shows up here rather than only on deeper inputs in the field.
fn refused(source: String) -> Vec<hermes_stack::Diagnostic> {
    let worker = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || {
            catch_unwind(AssertUnwindSafe(|| {
                load_str(Path::new("odd.toml"), &source, None).map(|_| ())
            }))
        })
        .expect("a thread to load on");
    let outcome = worker.join().expect("the loading thread to finish");
    let Ok(result) = outcome else {
        panic!("the loader panicked");
    };
    match result {
        Ok(()) => panic!("odd input was accepted"),
        Err(LoadError::Read { .. }) => panic!("load_str does not read files"),
        Err(LoadError::Invalid(diagnostics)) => {
            assert!(!diagnostics.is_empty());
            for d in &diagnostics {
                assert!(d.line >= 1 && d.column >= 1, "{d}");
                assert!(d.to_string().starts_with("odd.toml:"), "{d}");
            }
            diagnostics
        }
    }
}

#[test]
fn empty_and_blank_files() {
    for source in ["", "\n\n\n", "   \t  ", "# only a comment\n", "\u{feff}"] {
        let d = refused(source.to_owned());
        assert!(d[0].message.contains("missing key `version`"), "{:?}", d[0]);
    }
}

#[test]
fn binary_ish_text() {
    let bytes: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    refused(String::from_utf8_lossy(&bytes).into_owned());
    refused("\0\0\0\u{1}\u{7f}\u{fffd}=\u{202e}[[".to_owned());
    refused("version = 1\nname = \"a\0b\"\n".to_owned());
}

#[test]
fn deeply_nested_arrays_tables_and_keys() {
    let n = 100_000;
    refused(format!("a = {}{}", "[".repeat(n), "]".repeat(n)));
    refused(format!("a = {}1{}", "{ b = ".repeat(n), " }".repeat(n)));
    refused(format!("a{} = 1", ".b".repeat(n)));
    refused(format!("[a{}]", ".b".repeat(n)));
    refused(format!(
        "version = 1\nname = \"x\"\n[overlay.x{}]",
        ".b".repeat(n)
    ));
}

#[test]
fn huge_inputs_and_huge_numbers() {
    let mut many = String::new();
    for i in 0..20_000 {
        many.push_str("[hosts.h");
        many.push_str(&i.to_string());
        many.push_str("]\nsize = \"xlarge\"\n");
    }
    let d = refused(format!("version = 1\nname = \"big\"\n{many}"));
    assert_eq!(d.len(), 20_000);
    let d = refused("version = 1\nname = \"x\"\n[hosts.web]\ncount = 4294967295\n".to_owned());
    assert!(d[0].message.contains("out of range"), "{}", d[0]);
    let d = refused("version = 99999999999999999999999\n".to_owned());
    assert_eq!(d[0].line, 1);
    refused(format!("version = 1\nname = \"{}\"\n", "x".repeat(1 << 20)));
}

#[test]
fn columns_count_characters_and_crlf_lines() {
    let d = refused("version = 1\r\nname = \"Bad Name\"\r\n".to_owned());
    assert_eq!((d[0].line, d[0].column), (2, 8));
    let d = refused("version = 1\nname = \"grüße-€\"\n".to_owned());
    assert_eq!((d[0].line, d[0].column), (2, 8));
    let d = refused("version = 1 # ümlaut ✓\nname = \"ok\"\nbogus = 1\n".to_owned());
    assert_eq!((d[0].line, d[0].column), (3, 1));
}
