//! Filesystem churn: a thousand files created, rewritten, renamed and
//! deleted, and the status ends up matching the folders.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use super::{alive, matches_model, model_diff, rng_for, token_text, Model};
use crate::util::{Daemon, Env};

#[test]
fn filesystem_churn_of_1000_files_ends_with_status_matching_the_folders() {
    let mut rng = rng_for("filesystem churn");
    let env = Env::new();
    let folders = ["f0", "f1", "f2"];
    let cfg = {
        let mut text =
            "state_dir = \"state\"\n[alerts]\nrecipients = [\"ops@example.com\"]\n".to_string();
        for f in folders {
            text.push_str(&format!("[[folder]]\npath = \"{f}\"\nallow_empty = true\n"));
        }
        env.write("tokenwatch.toml", text)
    };
    let dirs: Vec<String> = folders
        .iter()
        .flat_map(|f| {
            std::iter::once(f.to_string()).chain((0..4).map(move |s| format!("{f}/sub{s}")))
        })
        .collect();
    for d in &dirs {
        std::fs::create_dir_all(env.path().join(d)).unwrap();
    }
    env.write("f0/seed.vpptoken", token_text("Seed", 500));
    let mut model: Model = BTreeMap::new();
    model.insert(env.path().join("f0/seed.vpptoken"), 500);
    let mut d = Daemon::start(&env, &cfg);
    d.wait_for("first scan", 20, |s| matches_model(s, &model));

    let started = Instant::now();
    let mut n = 0usize;
    let mut counts = BTreeMap::<&str, usize>::new();
    let mut new_path = |rng: &mut StdRng| {
        n += 1;
        env.path()
            .join(&dirs[rng.random_range(0..dirs.len())])
            .join(format!("churn{n:04}.vpptoken"))
    };
    // 1,000 created.
    for _ in 0..1000 {
        let p = new_path(&mut rng);
        let days = rng.random_range(100..1000);
        std::fs::write(&p, token_text("Churn", days)).unwrap();
        model.insert(p, days);
    }
    *counts.entry("created").or_default() += 1000;
    let mut keys: Vec<PathBuf> = model.keys().cloned().collect();
    keys.shuffle(&mut rng);
    // 300 rewritten, half in place, half by an editor's atomic save.
    for p in keys.iter().take(300) {
        let days = rng.random_range(100..1000);
        if rng.random_bool(0.5) {
            std::fs::write(p, token_text("Rewritten", days)).unwrap();
        } else {
            let tmp = p.with_extension("tmp");
            std::fs::write(&tmp, token_text("Saved", days)).unwrap();
            std::fs::rename(&tmp, p).unwrap();
        }
        model.insert(p.clone(), days);
    }
    *counts.entry("rewritten").or_default() += 300;
    // 200 renamed (anywhere in the watched folders), 50 renamed to names
    // that are not tokens, 200 deleted.
    for p in keys.iter().skip(300).take(200) {
        let to = new_path(&mut rng);
        std::fs::rename(p, &to).unwrap();
        let days = model.remove(p).unwrap();
        model.insert(to, days);
    }
    *counts.entry("renamed").or_default() += 200;
    for p in keys.iter().skip(500).take(50) {
        std::fs::rename(p, p.with_extension("vpptoken.bak")).unwrap();
        model.remove(p);
    }
    *counts.entry("renamed away").or_default() += 50;
    for p in keys.iter().skip(550).take(200) {
        std::fs::remove_file(p).unwrap();
        model.remove(p);
    }
    *counts.entry("deleted").or_default() += 200;
    // A subfolder and a whole configured folder deleted and re-created.
    for gone in ["f1/sub2", "f2"] {
        let dir = env.path().join(gone);
        std::fs::remove_dir_all(&dir).unwrap();
        model.retain(|p, _| !p.starts_with(&dir));
        std::fs::create_dir_all(dir.join("again")).unwrap();
        for i in 0..30 {
            let p = dir
                .join(if i % 2 == 0 { "" } else { "again" })
                .join(format!("back{i}.vpptoken"));
            let days = rng.random_range(100..1000);
            std::fs::write(&p, token_text("Back", days)).unwrap();
            model.insert(p, days);
        }
        *counts.entry("folders re-created").or_default() += 1;
    }
    let burst = started.elapsed();

    let mut last = None;
    let deadline = Instant::now() + Duration::from_secs(45);
    let converged = loop {
        if let Some(s) = d.status() {
            if matches_model(&s, &model) {
                break Some(started.elapsed());
            }
            last = Some(s);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let Some(converged) = converged else {
        panic!(
            "status never matched the folders\n{}\n--- daemon log ---\n{}",
            model_diff(last, &model),
            d.log()
        );
    };
    let s = d.status().expect("status");
    assert!(
        s["folders"]
            .as_array()
            .is_some_and(|a| a.iter().all(|f| f["state"] == "ok")),
        "{}",
        s["folders"]
    );
    assert!(alive(&mut d));
    d.stop();
    println!(
        "filesystem churn: {counts:?} in a {:.1} s burst; status matched all {} tokens {:.1} s after the burst began",
        burst.as_secs_f64(),
        model.len(),
        converged.as_secs_f64()
    );
}
