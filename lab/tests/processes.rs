//! A lab never leaves anything running: stopping or dropping what it started
//! takes along whatever that process forked (nginx's worker processes).

use std::time::Duration;
use vo_lab::{
    nginx::{Nginx, Site},
    scratch::ScratchDir,
    wait,
};

/// Live (not zombie) processes in process group `pgid`, from /proc.
fn live_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after ')'.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.first() != Some(&"Z") && fields.get(2) == Some(&pgid.to_string().as_str())
        })
        .collect()
}

async fn nginx_with_workers() -> (Nginx, ScratchDir, u32) {
    let site = ScratchDir::new("vo-lab-test-site").expect("scratch dir");
    std::fs::write(site.join("index.html"), "hello").expect("index.html");
    let nginx = Nginx::start(
        0,
        &Site::Static {
            root: site.path().to_owned(),
        },
        2,
    )
    .await
    .expect("nginx starts");
    let master = nginx.pid().expect("nginx runs");
    // The master forks its workers after it listens: wait for all three.
    wait::eventually("nginx's two workers", Duration::from_secs(10), async || {
        (live_members(master).len() == 3).then_some(())
    })
    .await
    .expect("master and two workers");
    (nginx, site, master)
}

async fn all_gone(pgid: u32) {
    let left = wait::eventually(
        "every process of the group to exit",
        Duration::from_secs(10),
        async || live_members(pgid).is_empty().then_some(()),
    )
    .await;
    assert!(
        left.is_ok(),
        "still running in group {pgid}: {:?}",
        live_members(pgid)
    );
}

#[tokio::test]
async fn dropping_nginx_kills_its_workers_too() {
    let (nginx, _site, master) = nginx_with_workers().await;
    drop(nginx);
    all_gone(master).await;
}

#[tokio::test]
async fn stopping_nginx_stops_its_workers() {
    let (nginx, _site, master) = nginx_with_workers().await;
    nginx.stop().await;
    all_gone(master).await;
}
