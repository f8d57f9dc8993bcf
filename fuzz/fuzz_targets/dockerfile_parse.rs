//! Arbitrary bytes (as lossy UTF-8) through the Dockerfile parser, every
//! instruction's substitution, and the raw substitution functions. Any
//! panic is a bug: the parser must return an error instead.
#![no_main]

use berth_build::dockerfile::{self, expand_heredoc, expand_word, expand_words};
use libfuzzer_sys::fuzz_target;

fn lookup(name: &str) -> Option<String> {
    (name.len() % 2 == 0).then(|| format!("v-{name}"))
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let _ = expand_word(&input, '\\', &mut lookup);
    let _ = expand_word(&input, '`', &mut lookup);
    let _ = expand_words(&input, '\\', &mut lookup);
    let _ = expand_heredoc(&input, &mut lookup);
    if let Ok(df) = dockerfile::parse(&input) {
        let nodes = df
            .global_args
            .iter()
            .chain(df.stages.iter().flat_map(|s| s.instructions.iter()));
        for node in nodes {
            let _ = node.instruction.expand(df.directives.escape, &mut lookup);
        }
        let _ = berth_build::plan::Plan::new(&df, &berth_build::plan::PlanOptions::default());
    }
});
