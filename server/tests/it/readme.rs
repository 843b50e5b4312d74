//! What the README shows operators, run for real: its nginx block in front
//! of two nodes, one of them full, must still give every browser a stream;
//! its flag tables list exactly the node's flags and variables.

use crate::support::{TestNode, DEADLINE};
use vo_lab::{nginx::Site, Nginx};

/// The README's nginx block, its ports replaced by `upstreams` and `listen`.
fn readme_nginx(upstreams: &[u16], listen: u16) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("the README");
    let start = readme.find("```nginx\n").expect("an nginx block") + "```nginx\n".len();
    let block = &readme[start..];
    let block = &block[..block.find("```").unwrap()];
    let servers = "server 127.0.0.1:3001; server 127.0.0.1:3002; server 127.0.0.1:3003;";
    assert!(
        block.contains(servers),
        "the README's upstream line changed: {block}"
    );
    assert!(
        block.contains("listen 8080;"),
        "the README's listen line changed: {block}"
    );
    let ours: String = upstreams
        .iter()
        .map(|p| format!("server 127.0.0.1:{p} max_fails=0;"))
        .collect::<Vec<_>>()
        .join(" ");
    block
        .replace(servers, &ours)
        .replace("listen 8080;", &format!("listen 127.0.0.1:{listen};"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_nginx_block_sends_streams_past_a_full_node() {
    let full = TestNode::start(&["--max-streams", "1"]).await;
    let roomy = TestNode::start(&[]).await;
    // Fill the first node.
    let held = reqwest::get(full.url("/api/version/events")).await.unwrap();
    assert_eq!(held.status(), 200);
    let port = vo_lab::free_port().unwrap();
    let blocks = readme_nginx(&[full.addr.port(), roomy.addr.port()], port);
    let nginx = Nginx::start(port, &Site::Raw { blocks }, 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Round robin sends every other request to the full node; each must
    // still get a stream (nginx retries the 503 on the other node).
    let mut streams = Vec::new();
    for i in 0..6 {
        let response = tokio::time::timeout(
            DEADLINE,
            reqwest::get(format!("{}/api/version/events", nginx.url())),
        )
        .await
        .expect("an answer")
        .unwrap();
        assert_eq!(response.status(), 200, "stream {i}: {}", nginx.error_log());
        streams.push(response);
    }
    // And pages go through too.
    let page = reqwest::get(format!("{}/healthz", nginx.url()))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    drop(held);
    nginx.stop().await;
}

#[test]
fn the_readme_documents_exactly_the_flags_the_node_has() {
    use clap::CommandFactory;
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    // The configuration tables' rows: "| `--flag <value>` | `VO_…` | …".
    let documented: std::collections::BTreeSet<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `--"))
        .map(|rest| rest.split([' ', '`']).next().unwrap().to_owned())
        .collect();
    let command = version_observer_node::Config::command();
    let flags: std::collections::BTreeSet<String> = command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !matches!(*l, "help" | "version"))
        .map(str::to_owned)
        .collect();
    assert_eq!(documented, flags, "README's flag tables against --help");
    for arg in command.get_arguments() {
        if let Some(env) = arg.get_env() {
            let env = env.to_string_lossy();
            assert!(
                readme.contains(&format!("| `{env}` |")),
                "README's tables lack {env}"
            );
        }
    }
}

#[test]
fn the_crates_environment_variables_are_the_nodes_own() {
    use clap::CommandFactory;
    // `ObserverBuilder::with_env` reads these: each must be the variable of
    // a node flag with the same meaning, so a host app is configured like
    // the reference node.
    let node: std::collections::BTreeSet<String> = version_observer_node::Config::command()
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    for name in version_observer::env::ALL {
        assert!(
            node.contains(name),
            "{name} is read by the crate but is no node flag's variable"
        );
    }
}
