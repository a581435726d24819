//! The project's image built and run with podman, as the deployment tests need it: a Debian
//! bookworm base made with `debootstrap` (no registry is needed), the Dockerfile's `prebuilt`
//! target around a binary of this build, and containers on the host's network that are removed
//! when the test ends. Podman reads `tests/container/containers.conf` (the `runc` runtime, no
//! default rlimits), so nothing of the machine's own configuration is changed.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{Output, unique_name, workspace};

/// The runtime base the test images are built on, kept in podman's store between runs.
pub const BASE_IMAGE: &str = "localhost/pipeline-test-base:bookworm";

/// Podman's configuration for the tests, given as `CONTAINERS_CONF`.
fn containers_conf() -> std::path::PathBuf {
    workspace().join("tests/container/containers.conf")
}

/// `podman` with the tests' configuration.
pub fn podman_command(args: &[&str]) -> Command {
    let mut command = Command::new("podman");
    command.env("CONTAINERS_CONF", containers_conf()).args(args);
    command
}

/// Runs podman; panics (naming what to install) when it is missing.
pub fn podman(args: &[&str]) -> Output {
    let output = podman_command(args).output().unwrap_or_else(|err| {
        panic!("podman is required for the container tests ({err}): apt-get install podman runc debootstrap, as .ci/run does")
    });
    Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs podman and panics unless it succeeds: its standard output.
pub fn podman_ok(args: &[&str]) -> String {
    let output = podman(args);
    assert_eq!(
        output.code,
        Some(0),
        "podman {}: {}{}",
        args.join(" "),
        output.stdout,
        output.stderr
    );
    output.stdout
}

/// Makes [`BASE_IMAGE`] unless podman has it: Debian bookworm (minbase, with CA certificates)
/// from `debootstrap`, without apt's lists, documentation and locales, imported as one layer.
pub fn ensure_base_image() {
    static MADE: Mutex<bool> = Mutex::new(false);
    let mut made = MADE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if *made || podman(&["image", "exists", BASE_IMAGE]).code == Some(0) {
        *made = true;
        return;
    }
    let root = std::env::temp_dir().join(unique_name("pipeline_rootfs"));
    let mirror =
        std::env::var("DEBIAN_MIRROR").unwrap_or_else(|_| "http://deb.debian.org/debian".into());
    let status = Command::new("debootstrap")
        .args(["--variant=minbase", "--include=ca-certificates", "bookworm"])
        .arg(&root)
        .arg(&mirror)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|err| {
            panic!("debootstrap is required to make the test base image ({err}): apt-get install debootstrap")
        });
    assert!(
        status.success(),
        "debootstrap of bookworm from {mirror} failed"
    );
    for trimmed in [
        "var/cache/apt",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/locale",
        "usr/share/info",
    ] {
        let _ = std::fs::remove_dir_all(root.join(trimmed));
    }
    let imported = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C '{}' -c . | podman import -q - {BASE_IMAGE}",
            root.display()
        ))
        .env("CONTAINERS_CONF", containers_conf())
        .status()
        .expect("tar and podman");
    let _ = std::fs::remove_dir_all(&root);
    assert!(imported.success(), "podman import of the base failed");
    *made = true;
}

/// An image of the Dockerfile's `prebuilt` target around one binary; removed when dropped.
#[derive(Debug)]
pub struct Image {
    pub tag: String,
    /// Bytes, as podman counts them (all layers).
    pub size: u64,
    /// How long `podman build` took.
    pub build_time: Duration,
}

impl Image {
    /// Builds the image around a stripped copy of `binary`, on [`BASE_IMAGE`].
    pub fn prebuilt(binary: &str) -> Image {
        ensure_base_image();
        let context = std::env::temp_dir().join(unique_name("pipeline_image"));
        std::fs::create_dir_all(&context).expect("the build context");
        let copy = context.join("daily");
        std::fs::copy(binary, &copy).expect("copy the binary into the build context");
        let stripped = Command::new("strip")
            .arg(&copy)
            .status()
            .expect("strip (binutils)");
        assert!(stripped.success(), "strip failed");
        let tag = format!("localhost/{}:test", unique_name("pipeline-image"));
        let dockerfile = workspace().join("Dockerfile");
        let started = Instant::now();
        podman_ok(&[
            "build",
            "--quiet",
            "--target",
            "prebuilt",
            "--build-arg",
            &format!("RUNTIME_IMAGE={BASE_IMAGE}"),
            "--file",
            path_str(&dockerfile),
            "--tag",
            &tag,
            path_str(&context),
        ]);
        let build_time = started.elapsed();
        let _ = std::fs::remove_dir_all(&context);
        let size = podman_ok(&["image", "inspect", "--format", "{{.Size}}", &tag])
            .trim()
            .parse()
            .expect("the image's size");
        Image {
            tag,
            size,
            build_time,
        }
    }

    /// Runs the image to the end with `args` (the network is the host's): what it printed.
    pub fn run(&self, options: &[&str], args: &[&str]) -> Output {
        let mut all = vec!["run", "--rm", "--network", "host"];
        all.extend_from_slice(options);
        all.push(&self.tag);
        all.extend_from_slice(args);
        podman(&all)
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = podman(&["rmi", "--force", &self.tag]);
    }
}

/// A container running in the background on the host's network; removed when dropped.
#[derive(Debug)]
pub struct Container {
    pub name: String,
}

impl Container {
    /// Starts `image` with `options` (volumes, environment) and `args` for `daily`.
    pub fn start(image: &Image, options: &[&str], args: &[&str]) -> Container {
        let name = unique_name("pipeline-container");
        let mut all = vec!["run", "--detach", "--name", &name, "--network", "host"];
        all.extend_from_slice(options);
        all.push(&image.tag);
        all.extend_from_slice(args);
        podman_ok(&all);
        Container { name }
    }

    /// What the container has printed so far (standard output and error).
    pub fn logs(&self) -> String {
        let output = podman(&["logs", &self.name]);
        format!("{}{}", output.stdout, output.stderr)
    }

    /// Runs `command` inside the running container.
    pub fn exec(&self, command: &[&str]) -> Output {
        let mut all = vec!["exec", self.name.as_str()];
        all.extend_from_slice(command);
        podman(&all)
    }

    /// `podman stop`: SIGTERM to PID 1, SIGKILL after `grace`. How long the container took
    /// to exit, and its exit code.
    pub fn stop(&self, grace: Duration) -> (Duration, i64) {
        let started = Instant::now();
        podman_ok(&["stop", "--time", &grace.as_secs().to_string(), &self.name]);
        let took = started.elapsed();
        let code = podman_ok(&["inspect", "--format", "{{.State.ExitCode}}", &self.name])
            .trim()
            .parse()
            .expect("the exit code");
        (took, code)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "--force", "--time", "0", &self.name]);
    }
}

/// A directory the image's user (uid 10001) may write, mounted as its `/data`.
pub fn data_volume(dir: &Path) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
        .expect("open the directory to the image's user");
    format!("{}:/data", dir.display())
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}
