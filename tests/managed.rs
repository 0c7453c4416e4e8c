//! `bindery up` with its managed parts (issue 15): the registry and JupyterHub (with its
//! proxy and idle culler), and podman's API service when podman is installed, all started
//! by `bindery up` itself on free ports with their own data dir. The banner names them,
//! `/health` goes green, a killed hub is restarted, and SIGTERM leaves none of them behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use bindery_system_tests::sse::get;
use bindery_system_tests::up::{Up, alive, processes_mentioning};
use bindery_system_tests::{free_port, scratch, workspace};

#[tokio::test(flavor = "multi_thread")]
async fn up_manages_registry_and_hub_restarts_a_killed_hub_and_leaves_nothing_behind() {
    let python = std::env::var("BINDERY_PYTHON")
        .expect("BINDERY_PYTHON: run the tests with `cargo xtask test`");
    let dir = scratch("managed");
    let data = dir.join("data");
    let (edge, worker, registry, hub) = (free_port(), free_port(), free_port(), free_port());
    // Relative, as bindery.toml's `.bindery`: the managed parts run in directories of their
    // own, where it must still name the same place (the banner shows it absolute).
    let relative = data.strip_prefix(workspace()).unwrap();
    let config = format!(
        "data_dir = \"{relative}\"\n\
         [edge]\nlisten = \"127.0.0.1:{edge}\"\n\
         [worker]\nlisten = \"127.0.0.1:{worker}\"\n\
         [managed]\nregistry_listen = \"127.0.0.1:{registry}\"\n\
         hub_listen = \"127.0.0.1:{hub}\"\npython = \"{python}\"\n\
         mem_limit = \"1G\"\ncpu_limit = 1.0\n",
        relative = relative.display(),
    );
    let podman = Path::new("/usr/bin/podman").exists();
    let mut up = Up::start(&dir, &config, &[]).await;
    let out = up.output();
    for expected in [
        format!(
            "registry: http://127.0.0.1:{registry}, images named 127.0.0.1:{registry}/binder-*"
        ),
        format!("hub:      http://127.0.0.1:{hub}/"),
        format!(
            "managed:  registry  http://127.0.0.1:{registry}, images in {}",
            data.join("registry/data").display()
        ),
        format!("managed:  proxy     configurable-http-proxy on 127.0.0.1:{hub}"),
        format!("managed:  hub       JupyterHub http://127.0.0.1:{hub}/, anonymous users"),
        "managed:  culler    jupyterhub-idle-culler: 600 s idle, 21600 s at most".to_owned(),
        "then the managed parts".to_owned(),
    ] {
        assert!(out.contains(&expected), "missing {expected:?} in:\n{out}");
    }
    assert!(
        !out.contains("hub_api_token is not set"),
        "the token is generated: {out}"
    );
    if podman {
        assert!(
            out.contains("managed:  engine    podman, API service on unix://"),
            "{out}"
        );
    }
    // The managed registry and hub answer, the hub with the binder service's token.
    let v2 = get(&format!("http://127.0.0.1:{registry}/v2/"), &[]).await;
    assert_eq!(v2.status, 200, "{}", v2.text());
    let settings = std::fs::read_to_string(data.join("worker/worker.toml")).unwrap();
    let token = settings
        .lines()
        .find_map(|l| l.strip_prefix("hub_api_token = \""))
        .and_then(|t| t.strip_suffix('"'))
        .expect("the worker got the hub token")
        .to_owned();
    let auth = format!("token {token}");
    let hub_api = format!("http://127.0.0.1:{hub}/hub/api/users");
    assert_eq!(
        get(&hub_api, &[("authorization", auth.as_str())])
            .await
            .status,
        200
    );
    if podman {
        up.health_green(Duration::from_secs(60)).await.unwrap();
    } else {
        // Without an engine the worker's engine check is red, the others green.
        let health = get(&format!("{}health", up.url), &[]).await;
        let checks = health.json()["checks"].clone();
        for service in ["JupyterHub API", "Docker registry"] {
            let check = checks
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["service"] == service);
            assert_eq!(
                check.map(|c| c["ok"] == true),
                Some(true),
                "{service}: {checks}"
            );
        }
    }

    // A killed hub is restarted, and answers with the same token again.
    let first = *up
        .managed_pids("hub")
        .first()
        .expect("the hub's pid in the banner");
    assert!(alive(first));
    std::process::Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .unwrap();
    let mut restarted = None;
    for _ in 0..240 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let pids = up.managed_pids("hub");
        if let Some(&pid) = pids.iter().find(|&&p| p != first)
            && get(&hub_api, &[("authorization", auth.as_str())])
                .await
                .status
                == 200
        {
            restarted = Some(pid);
            break;
        }
    }
    let second = restarted.unwrap_or_else(|| panic!("the hub was not restarted:\n{}", up.output()));
    assert!(!alive(first), "the killed hub was reaped");
    if podman {
        up.health_green(Duration::from_secs(60)).await.unwrap();
    }

    let mut pids: Vec<u32> = ["registry", "engine", "proxy", "hub", "culler"]
        .iter()
        .flat_map(|name| up.managed_pids(name))
        .collect();
    pids.push(second);
    let status = up.stop().expect("bindery up stops within 60 s of SIGTERM");
    assert!(status.success(), "{status:?}\n{}", up.output());
    let out = up.output();
    for name in ["culler", "hub", "proxy", "registry"] {
        assert!(
            out.contains(&format!("managed {name} stopped")),
            "{name}:\n{out}"
        );
    }
    let left: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "still running: {left:?}\n{out}");
    let strays = processes_mentioning(&data);
    assert!(strays.is_empty(), "left behind: {strays:?}");
    for port in [edge, registry, hub] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "{port}"
        );
    }
}
