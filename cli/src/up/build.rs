//! Finding what `ddb up` runs and, from a source checkout, building it first.
//!
//! Run from a cargo target directory of its own source tree (`target/<profile>/ddb`), `ddb up`
//! builds what it starts with **one** `cargo build` whose package selection is exactly the
//! README's first command ([`readme_command`]): cargo unifies features over the packages of one
//! invocation, so any other selection compiles the shared dependencies (and `ddb` itself) a
//! second time, and overwrites the running `ddb` under its feet. For the same reason the
//! variables cargo sets for a program it runs (`cargo run`: `CARGO_PKG_NAME`,
//! `CARGO_MANIFEST_DIR`, ...) are not passed on to that cargo: build scripts such as ring's
//! declare `rerun-if-env-changed` on them, so inherited values made ring, rustls and
//! everything above them, `ddb` included, build again.

use super::console::Console;
use super::nats::NATS_MISSING;
use super::proc::run_to_end;
use super::UpArgs;
use anyhow::{anyhow, bail};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::process::Command;

/// The packages of the binaries `ddb up` runs, in the order the README's command names them;
/// the GUI's last.
pub const PACKAGES: [&str; 4] = ["ddb-cli", "ddb-master", "ddb-slave", "ddb-gui"];

/// The binaries those packages build, in the same order.
const BINARIES: [&str; 4] = ["ddb", "ddb-master", "ddb-slave", "ddb-gui"];

/// The README's first command: what a first `ddb up` from the source tree runs itself, so
/// that either finds the other's build fresh.
pub fn readme_command() -> String {
    format!("cargo {}", cargo_args("release", true).join(" "))
}

/// `cargo` arguments that build the binaries of `profile`, the GUI's with `gui`.
pub fn cargo_args(profile: &str, gui: bool) -> Vec<String> {
    let mut args = vec!["build".to_owned()];
    match profile {
        "debug" => {}
        "release" => args.push("--release".into()),
        other => args.extend(["--profile".into(), other.to_owned()]),
    }
    args.push("--bins".into());
    for p in &PACKAGES[..if gui { 4 } else { 3 }] {
        args.extend(["-p".into(), (*p).to_owned()]);
    }
    args
}

/// Whether `name` is one of the variables cargo sets for a program it runs or a build script
/// (`cargo run`, `cargo test`), which must not reach a cargo that `ddb up` starts.
pub fn set_by_cargo(name: &str) -> bool {
    const PREFIXES: [&str; 5] = [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CFG_",
        "CARGO_FEATURE_",
        "CARGO_BIN_EXE_",
    ];
    const NAMES: [&str; 7] = [
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "CARGO_MAKEFLAGS",
        "OUT_DIR",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || NAMES.contains(&name)
}

/// A rough time for `ddb up`'s build to make the `missing` binaries on `cores` cores. `ddb`
/// itself is built (it runs), and with it most dependencies; the GUI is the big part (iced,
/// and the dependencies whose features it changes). Cargo gains little beyond 8 cores.
pub fn build_estimate(profile: &str, missing: &[&str], cores: usize) -> Duration {
    let release = profile != "debug";
    // Core-minutes, rough figures from a 2-core machine (a full release build of ddb, the
    // nodes and the GUI, which is what the README's first command does, takes about 9
    // minutes there).
    let work: f64 = missing
        .iter()
        .map(|bin| match (*bin, release) {
            ("ddb-gui", true) => 11.0,
            ("ddb-gui", false) => 5.0,
            (_, true) => 1.0,
            (_, false) => 0.3,
        })
        .sum();
    let minutes = work / cores.clamp(1, 8) as f64;
    Duration::from_secs((minutes * 60.0).round() as u64)
}

/// `about 4 minutes`, `about a minute`.
fn about(d: Duration) -> String {
    match d.as_secs() {
        0..=89 => "about a minute".into(),
        s => format!("about {} minutes", (s + 30) / 60),
    }
}

fn exe_name(name: &str) -> String {
    format!("{name}{}", std::env::consts::EXE_SUFFIX)
}

/// `name` in `dir`, else on PATH.
pub fn locate(name: &str, dir: Option<&Path>) -> Option<PathBuf> {
    let file = exe_name(name);
    if let Some(p) = dir.map(|d| d.join(&file)).filter(|p| p.is_file()) {
        return Some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(&file))
        .find(|p| p.is_file())
}

/// The running `ddb`'s path. When a build replaced the file, Linux names it `... (deleted)`:
/// that suffix is dropped (the path then holds the new build).
fn current_exe() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let text = exe.to_str()?;
    let exe = PathBuf::from(text.strip_suffix(" (deleted)").unwrap_or(text));
    Some(exe.canonicalize().unwrap_or(exe))
}

/// The source tree `ddb` was built from, when it is still there.
pub(super) fn source_root() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.to_owned();
    root.join("Cargo.toml").is_file().then_some(root)
}

/// `ddb` running from a cargo target directory of its own source tree.
struct Checkout {
    root: PathBuf,
    /// `<target>/<profile>`, where the binaries are.
    out: PathBuf,
    target: PathBuf,
    profile: String,
}

fn checkout(dir: &Path) -> Option<Checkout> {
    let root = source_root()?;
    let target = dir.parent()?;
    if !target.join("CACHEDIR.TAG").is_file() {
        return None;
    }
    Some(Checkout {
        profile: dir.file_name()?.to_str()?.to_owned(),
        root,
        out: dir.to_owned(),
        target: target.to_owned(),
    })
}

/// A path as the user can type it from here: `./target/release/ddb` under the current
/// directory, else absolute.
pub fn shown(path: &Path) -> String {
    if let Ok(cwd) = std::env::current_dir() {
        if let Ok(rel) = path.strip_prefix(cwd.canonicalize().unwrap_or(cwd)) {
            return format!(".{}{}", std::path::MAIN_SEPARATOR, rel.display());
        }
    }
    path.display().to_string()
}

/// What `up` runs, where it was found.
pub(super) struct Binaries {
    pub nats: PathBuf,
    pub master: PathBuf,
    pub slave: PathBuf,
    pub gui: Option<PathBuf>,
    /// How to type `ddb` in the banner's examples: `ddb` when PATH finds this one, else its
    /// path (after the build, so a file that exists).
    pub ddb: String,
}

/// Finds (and, from a source checkout, first builds) what `up` runs.
pub(super) async fn binaries(
    args: &UpArgs,
    want_gui: bool,
    console: &Console,
) -> anyhow::Result<Binaries> {
    let nats = locate("nats-server", None).ok_or_else(|| anyhow!(NATS_MISSING))?;
    let exe = current_exe();
    let dir = args
        .bin_dir
        .clone()
        .or_else(|| exe.as_deref().and_then(Path::parent).map(Path::to_owned));
    let tree = dir.as_deref().and_then(checkout);
    if let (false, Some(tree)) = (args.no_build, &tree) {
        let cargo = std::env::var_os("CARGO")
            .map(PathBuf::from)
            .or_else(|| locate("cargo", None));
        match cargo {
            None => console.line(
                "build",
                "cargo is not on PATH: using the binaries as they are",
            ),
            Some(cargo) => build(&cargo, tree, want_gui, console).await?,
        }
    }
    let dir = dir.as_deref();
    let find = |name: &str| {
        locate(name, dir).ok_or_else(|| {
            anyhow!(
                "{name} is not built: it is neither beside {} nor on PATH; build it with `{}` \
                 (or install it with `cargo install --path {}`)",
                dir.map_or("ddb".into(), |d| d.display().to_string()),
                readme_command(),
                if name == "ddb-master" {
                    "master"
                } else {
                    "slave"
                }
            )
        })
    };
    // The `ddb` to show: the source tree's build when there is one (the running file may have
    // been replaced), else this one; plain `ddb` when that is what PATH finds.
    let ddb = tree
        .as_ref()
        .map(|t| t.out.join(exe_name("ddb")))
        .filter(|p| p.is_file())
        .or(exe)
        .map(|p| p.canonicalize().unwrap_or(p));
    let on_path = locate("ddb", None).and_then(|p| p.canonicalize().ok());
    let ddb = match ddb {
        Some(p) if on_path.as_ref() != Some(&p) => shown(&p),
        _ => "ddb".into(),
    };
    Ok(Binaries {
        nats,
        master: find("ddb-master")?,
        slave: find("ddb-slave")?,
        gui: if want_gui {
            locate("ddb-gui", dir)
        } else {
            None
        },
        ddb,
    })
}

/// One `cargo build` of every binary `up` runs (and `ddb` itself, see the module's comment)
/// into `ddb`'s own target directory. The GUI is in the selection when it is to be started or
/// was built before (so that the selection stays that of the README's command).
async fn build(
    cargo: &Path,
    tree: &Checkout,
    want_gui: bool,
    console: &Console,
) -> anyhow::Result<()> {
    let gui_package = tree.root.join("gui").join("Cargo.toml").is_file();
    let built = |bin: &str| tree.out.join(exe_name(bin)).is_file();
    let gui = gui_package && (want_gui || built("ddb-gui"));
    let args = cargo_args(&tree.profile, gui);
    let mut cmd = Command::new(cargo);
    cmd.args(&args).current_dir(&tree.root);
    let own_target = tree.root.join("target");
    let same_target = tree.target.canonicalize().ok() == own_target.canonicalize().ok();
    if !same_target || std::env::var_os("CARGO_TARGET_DIR").is_some() {
        cmd.arg("--target-dir").arg(&tree.target);
    }
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_by_cargo) {
            cmd.env_remove(&name);
        }
    }
    let missing: Vec<&str> = BINARIES[..if gui { 4 } else { 3 }]
        .iter()
        .copied()
        .filter(|b| !built(b))
        .collect();
    if missing.is_empty() {
        console.line(
            "build",
            "running from the source tree: bringing the binaries up to date with it (--no-build skips this)",
        );
    } else {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let took = build_estimate(&tree.profile, &missing, cores);
        console.line(
            "build",
            &format!(
                "first build of {} ({}): {} on {cores} core{}; later runs take seconds",
                missing.join(", "),
                if tree.profile == "debug" {
                    "debug".to_owned()
                } else {
                    format!("{} profile", tree.profile)
                },
                about(took),
                if cores == 1 { "" } else { "s" },
            ),
        );
    }
    let shown_args: Vec<String> = cmd
        .as_std()
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let program = if cargo.file_name() == Some(OsStr::new("cargo"))
        && locate("cargo", None).is_some_and(|p| p == cargo)
    {
        "cargo".to_owned()
    } else {
        cargo.display().to_string()
    };
    console.line(
        "build",
        &format!(
            "running: {program} {} (in {})",
            shown_args.join(" "),
            tree.root.display()
        ),
    );
    let started = Instant::now();
    if !run_to_end("cargo", cmd, console).await? {
        bail!(
            "the build failed: see the [cargo] lines above (`ddb up --no-build` runs the binaries as they are)"
        );
    }
    console.line(
        "build",
        &format!("done in {:.1} s", started.elapsed().as_secs_f64()),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_selection_for_the_readme_and_for_up() {
        assert_eq!(
            readme_command(),
            "cargo build --release --bins -p ddb-cli -p ddb-master -p ddb-slave -p ddb-gui"
        );
        assert_eq!(
            cargo_args("debug", false).join(" "),
            "build --bins -p ddb-cli -p ddb-master -p ddb-slave"
        );
        assert_eq!(
            cargo_args("bench-prof", true)[..3],
            ["build", "--profile", "bench-prof"]
        );
    }

    #[test]
    fn what_cargo_run_sets_is_not_passed_on_but_the_users_settings_are() {
        for set in [
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "OUT_DIR",
        ] {
            assert!(set_by_cargo(set), "{set}");
        }
        for user in [
            "CARGO",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_INCREMENTAL",
            "CARGO_PROFILE_RELEASE_LTO",
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTFLAGS",
            "PATH",
        ] {
            assert!(!set_by_cargo(user), "{user}");
        }
    }

    #[test]
    fn the_build_estimate_counts_what_is_missing() {
        let all = ["ddb-master", "ddb-slave", "ddb-gui"];
        let two = build_estimate("release", &all, 2);
        assert!(two >= Duration::from_secs(5 * 60) && two <= Duration::from_secs(8 * 60));
        assert_eq!(about(two), "about 7 minutes");
        let nodes = build_estimate("release", &all[..2], 2);
        assert_eq!(about(nodes), "about a minute");
        assert!(build_estimate("debug", &all, 2) < two);
        assert!(build_estimate("release", &all, 8) < two);
        assert_eq!(
            build_estimate("release", &all, 64),
            build_estimate("release", &all, 8)
        );
        assert_eq!(build_estimate("release", &[], 2), Duration::ZERO);
    }
}
