//! The real clients, installed once into the git-ignored `.cache` at the workspace root.
//!
//! Versions are pinned. Each install is built in a private `*.partial-*` folder, checked
//! (the binary runs and reports its version, the modules import), stamped with a marker
//! naming what it holds, and only then renamed into place: a folder without the right marker
//! (an interrupted run, an older pin, a copy made by hand) is never used, it is replaced.
//! Two test processes racing on a fresh machine both build and the first rename wins, so no
//! lock file is needed. Inside one process a [`OnceCell`] makes parallel tests wait for one
//! install.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::process::Command;
use tokio::sync::OnceCell;

pub const CLAUDE_CODE_VERSION: &str = "2.1.332";
const CLAUDE_CODE_PACKAGE: &str = "@anthropic-ai/claude-code@2.1.332";
const PYTHON_PACKAGES: [&str; 2] = ["anthropic==2.14.0", "openai==3.57.0"];

const NODE_HINT: &str = "agw e2e tests need Node.js >= 20 with npm: apt-get install nodejs npm";
const PYTHON_HINT: &str =
    "agw e2e tests need Python >= 3.9 with venv and pip: apt-get install python3 python3-venv";

/// The npm download is about 400 MB; a slow mirror gets this long before the test gives up.
const INSTALL_LIMIT: Duration = Duration::from_secs(20 * 60);
const PROBE_LIMIT: Duration = Duration::from_secs(60);

/// Written last into a finished install; its content names exactly what was installed.
const MARKER: &str = "agw-install.txt";

/// Paths of the installed clients.
#[derive(Debug)]
pub struct Tools {
    /// Claude Code's native binary.
    pub claude: PathBuf,
    /// The venv's interpreter, with the pinned SDKs importable.
    pub python: PathBuf,
}

/// The installed clients; installs them first if needed. Panics with one line saying what
/// is missing when the machine lacks Node.js, npm or Python.
pub async fn tools() -> &'static Tools {
    static TOOLS: OnceCell<Result<Tools, String>> = OnceCell::const_new();
    let tools = TOOLS
        .get_or_init(|| async {
            let cache = cache_dir()?;
            sweep(&cache);
            let claude = claude_code(&cache).await?;
            let python = python_venv(&cache).await?;
            Ok(Tools { claude, python })
        })
        .await;
    match tools {
        Ok(tools) => tools,
        Err(e) => panic!("{e}"),
    }
}

fn cache_dir() -> Result<PathBuf, String> {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.cache"));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    dir.canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", dir.display()))
}

/// `.cache/npm`, holding `@anthropic-ai/claude-code` and its native binary.
async fn claude_code(cache: &Path) -> Result<PathBuf, String> {
    let stamp = format!("{CLAUDE_CODE_PACKAGE}\n");
    let done = cache.join("npm");
    if let Some(claude) = installed(&done, &stamp) {
        return Ok(claude);
    }
    let node = probe(Command::new("node").arg("--version"))
        .await
        .map_err(|_| NODE_HINT.to_owned())?;
    let major = node.trim().trim_start_matches('v').split('.').next();
    if major
        .and_then(|m| m.parse::<u32>().ok())
        .is_none_or(|m| m < 20)
    {
        return Err(format!("{NODE_HINT} (found node {})", node.trim()));
    }
    probe(Command::new("npm").arg("--version"))
        .await
        .map_err(|_| NODE_HINT.to_owned())?;

    let partial = Partial::new(cache, "npm")?;
    let work = &partial.0;
    // A package.json of its own keeps npm from adopting a project further up the tree.
    write(
        &work.join("package.json"),
        "{\"name\":\"agw-e2e-clients\",\"private\":true}\n",
    )?;
    // The package asks for node >= 22 (EBADENGINE warning) but its native binary does not use
    // node at all; the postinstall script links `bin/claude.exe` to that binary.
    let mut npm = Command::new("npm");
    npm.args([
        "install",
        "--no-audit",
        "--no-fund",
        "--save-exact",
        "--loglevel=error",
    ])
    .arg(CLAUDE_CODE_PACKAGE)
    .current_dir(work);
    run(&mut npm, INSTALL_LIMIT).await?;
    let claude = find_claude(work)
        .await
        .ok_or_else(|| format!("npm installed {CLAUDE_CODE_PACKAGE} but no claude binary there runs and reports {CLAUDE_CODE_VERSION}"))?;
    let relative = claude.strip_prefix(work).expect("found inside the install");
    finish(
        work,
        &done,
        &stamp,
        &format!("{stamp}{}\n", relative.display()),
    )?;
    installed(&done, &stamp).ok_or_else(|| format!("{} is not a finished install", done.display()))
}

/// `bin/claude.exe` once the postinstall ran, else the platform package's binary directly.
async fn find_claude(root: &Path) -> Option<PathBuf> {
    let scope = root.join("node_modules/@anthropic-ai");
    let mut candidates = vec![scope.join("claude-code/bin/claude.exe")];
    for entry in std::fs::read_dir(&scope).ok()?.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("claude-code-")
        {
            candidates.push(entry.path().join("claude"));
        }
    }
    for candidate in candidates {
        let version = probe(Command::new(&candidate).arg("--version")).await;
        if version.is_ok_and(|v| v.starts_with(CLAUDE_CODE_VERSION)) {
            return Some(candidate);
        }
    }
    None
}

/// `.cache/venv`, a virtualenv with the pinned SDKs.
async fn python_venv(cache: &Path) -> Result<PathBuf, String> {
    let stamp = format!("{}\n", PYTHON_PACKAGES.join(" "));
    let done = cache.join("venv");
    if let Some(python) = installed(&done, &stamp) {
        return Ok(python);
    }
    let version =
        probe(Command::new("python3").args(["-c", "import sys; print(*sys.version_info[:2])"]))
            .await
            .map_err(|_| PYTHON_HINT.to_owned())?;
    let numbers: Vec<u32> = version
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    if numbers.as_slice() < [3, 9].as_slice() {
        return Err(format!("{PYTHON_HINT} (found python3 {})", version.trim()));
    }

    let partial = Partial::new(cache, "venv")?;
    let work = &partial.0;
    run(
        Command::new("python3").arg("-m").arg("venv").arg(work),
        INSTALL_LIMIT,
    )
    .await
    .map_err(|e| format!("{PYTHON_HINT} ({e})"))?;
    let python = work.join("bin/python");
    let mut pip = Command::new(&python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ])
    .args(PYTHON_PACKAGES);
    run(&mut pip, INSTALL_LIMIT).await?;
    let check = "import anthropic, openai; print(anthropic.__version__, openai.__version__)";
    let versions = probe(Command::new(&python).args(["-c", check])).await?;
    let expected: Vec<&str> = PYTHON_PACKAGES
        .iter()
        .map(|p| p.split_once("==").unwrap().1)
        .collect();
    if versions.split_whitespace().collect::<Vec<_>>() != expected {
        return Err(format!(
            "the venv has SDK versions {} instead of {expected:?}",
            versions.trim()
        ));
    }
    relocate_venv(work, &done)?;
    finish(work, &done, &stamp, &format!("{stamp}bin/python\n"))?;
    installed(&done, &stamp).ok_or_else(|| format!("{} is not a finished install", done.display()))
}

/// A venv finds itself from its interpreter's location, so `bin/python` works after the
/// rename as it is; the scripts in `bin/` (pip's shebangs, `activate`) and `pyvenv.cfg` name
/// the folder literally and are pointed at the final one here.
fn relocate_venv(work: &Path, done: &Path) -> Result<(), String> {
    let (from, to) = (work.to_string_lossy(), done.to_string_lossy());
    let bin =
        std::fs::read_dir(work.join("bin")).map_err(|e| format!("{}: {e}", work.display()))?;
    let files = bin
        .flatten()
        .map(|e| e.path())
        .chain([work.join("pyvenv.cfg")]);
    for path in files.filter(|p| !p.is_symlink()) {
        if let Ok(text) = std::fs::read_to_string(&path)
            && text.contains(from.as_ref())
        {
            write(&path, &text.replace(from.as_ref(), &to))?;
        }
    }
    Ok(())
}

/// The tool named in `dir`'s marker, if the marker starts with `stamp` and the tool is there.
fn installed(dir: &Path, stamp: &str) -> Option<PathBuf> {
    let marker = std::fs::read_to_string(dir.join(MARKER)).ok()?;
    let tool = dir.join(marker.strip_prefix(stamp)?.trim());
    tool.is_file().then_some(tool)
}

/// Removes the `*.partial-PID-*` and `*.stale-PID-*` folders of test processes that were
/// killed mid-install (PID no longer running), so that their hundreds of MB do not pile up.
fn sweep(cache: &Path) {
    if !Path::new("/proc/self").exists() {
        return; // no cheap way to tell a finished process from a running one
    }
    for entry in std::fs::read_dir(cache).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let owner = [".partial-", ".stale-"]
            .iter()
            .find_map(|tag| name.split_once(tag))
            .and_then(|(_, rest)| rest.split('-').next());
        if owner.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
            remove(&entry.path());
        }
    }
}

/// A private folder next to the final one, removed unless it was moved into place.
struct Partial(PathBuf);

impl Partial {
    fn new(cache: &Path, name: &str) -> Result<Self, String> {
        let dir = cache.join(format!("{name}.partial-{}", unique()));
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        remove(&self.0);
    }
}

/// Stamps `work` and renames it to `done`, setting aside whatever unfinished folder is there.
/// If another process finished first, its install is kept (and ours dropped with its
/// [`Partial`]).
fn finish(work: &Path, done: &Path, stamp: &str, marker: &str) -> Result<(), String> {
    write(&work.join(MARKER), marker)?;
    if installed(done, stamp).is_some() {
        return Ok(());
    }
    if done.exists() {
        let stale = done.with_extension(format!("stale-{}", unique()));
        if std::fs::rename(done, &stale).is_ok() {
            remove(&stale);
        }
    }
    match std::fs::rename(work, done) {
        Ok(()) => Ok(()),
        Err(_) if installed(done, stamp).is_some() => Ok(()),
        Err(e) => Err(format!(
            "cannot move {} to {}: {e}",
            work.display(),
            done.display()
        )),
    }
}

fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}-{nanos}", std::process::id())
}

/// Runs a short command and returns its stdout; any failure is an error.
async fn probe(command: &mut Command) -> Result<String, String> {
    run(command, PROBE_LIMIT).await
}

/// Runs a command to completion within `limit` (killed after it) and returns its stdout, or an
/// error with its output.
async fn run(command: &mut Command, limit: Duration) -> Result<String, String> {
    let shown = format!("{:?}", command.as_std());
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .map_err(|_| format!("{shown} did not finish within {limit:?}"))?
        .map_err(|e| format!("{shown}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(format!(
            "{shown} failed ({}):\n{stdout}{stderr}",
            output.status
        ))
    }
}
