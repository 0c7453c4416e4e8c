# JupyterHub config for bindery-worker's tests (TEST-ENVIRONMENT.md §1, adapted).
# The test harness chooses free ports and directories and passes them in the environment.
import asyncio
import os
import sys

from jupyterhub.spawner import SimpleLocalProcessSpawner

c = get_config()  # noqa: F821
env = os.environ
hub_dir = env["BINDERY_TEST_HUB_DIR"]

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = int(env["BINDERY_TEST_HUB_PORT"])
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(env["BINDERY_TEST_HUB_API_PORT"])
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:" + env["BINDERY_TEST_PROXY_API_PORT"]
c.ConfigurableHTTPProxy.command = [os.path.join(os.path.dirname(sys.executable), "configurable-http-proxy")]
c.ConfigurableHTTPProxy.auth_token = "proxy-secret-token-0123456789abcdef"

c.JupyterHub.db_url = "sqlite:///" + env["BINDERY_TEST_HUB_DB"]
c.JupyterHub.cookie_secret = bytes.fromhex("00" * 32)
c.JupyterHub.pid_file = os.path.join(hub_dir, "jupyterhub.pid")

c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True

c.Spawner.cmd = [os.path.join(os.path.dirname(sys.executable), "jupyterhub-singleuser")]
c.Spawner.args = ["--allow-root"]
# BinderHub sends users to <server url>?token=...; JupyterHub >= 5 ignores URL tokens unless:
c.Spawner.environment = {"JUPYTERHUB_ALLOW_TOKEN_IN_URL": "1"}
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60

c.JupyterHub.services = [
    {"name": "binder", "api_token": env["BINDERY_TEST_HUB_API_TOKEN"]},
]
c.JupyterHub.load_roles = [
    {
        "name": "binder",
        "services": ["binder"],
        "scopes": ["servers", "admin:users", "tokens", "read:users", "access:servers"],
    },
]


# Images whose first spawn already failed (`flaky` images fail only once).
flaky_failed = set()


def record_failed_spawn(username):
    """Appends the user of a simulated failure to `failed-spawns` in the hub directory,
    so a test can check that this user was deleted afterwards."""
    with open(os.path.join(hub_dir, "failed-spawns"), "a") as f:
        f.write(username + "\n")


class BinderTestSpawner(SimpleLocalProcessSpawner):
    """Reads BinderHub's user_options; the image name scripts the spawn, since a launch
    request cannot carry test knobs: `slow` in the image delays the start by 3 s, `fail`
    makes every spawn fail, `flaky` makes the first spawn of that image fail (whatever the
    user) and later ones succeed."""

    home_dir_template = os.path.join(hub_dir, "homes", "{username}")

    def get_env(self):
        env = super().get_env()
        env["BINDER_IMAGE"] = str(self.user_options.get("image", ""))
        env["BINDER_REPO_URL"] = str(self.user_options.get("repo_url", ""))
        return env

    async def start(self):
        image = str(self.user_options.get("image", ""))
        if not image or not self.user_options.get("token"):
            raise RuntimeError("image and token are required in user_options")
        if "slow" in image:
            await asyncio.sleep(3)
        if "fail" in image:
            record_failed_spawn(self.user.name)
            raise RuntimeError("simulated spawn failure")
        if "flaky" in image and image not in flaky_failed:
            flaky_failed.add(image)
            record_failed_spawn(self.user.name)
            raise RuntimeError("simulated flaky spawn failure")
        # BinderHub's spawner starts the server with `--token=<user_options.token>`; a
        # jupyterhub-singleuser server checks tokens with the hub instead, so the launch
        # token is registered there, scoped to this user's server.
        self.user.new_api_token(
            token=self.user_options["token"],
            note="binder launch token",
            scopes=[f"access:servers!user={self.user.name}"],
        )
        return await super().start()


c.JupyterHub.spawner_class = BinderTestSpawner
