//! The load benchmark's driver: `scripts/load-bench.sh` runs it; see the README.
//!
//! ```text
//! loadgen <demo binary> [--seconds N] [--connections N] [--tokens N] [--server-cpus LIST]
//!         [--busy-poll] [--pipeline N]
//! ```
//!
//! It starts a mock OpenID provider in this process, mints tokens with it, and starts the demo
//! binary (built in release mode) as a separate process pointed at that provider through
//! `OIDC_DISCOVERY_URL`, pinned with `taskset` to `--server-cpus` when `taskset` exists. Then it
//! drives the demo over keep-alive HTTP/1.1 connections on 127.0.0.1 for a bounded time per
//! scenario and prints requests per second, p50 and p99 latency, the ratio to `/public`, the CPU
//! the server used (cores), and the server's peak resident memory (`VmHWM`):
//!
//! * `/public`: no authentication.
//! * `/public + same header`: `/public` carrying the `Authorization` header of the next
//!   scenario, which the route ignores: what the request size alone costs.
//! * `/me, one token`: the same valid token on every request (the validated-token cache).
//! * `/me, distinct tokens`: a second demo process with `OIDC_TOKEN_CACHE_CAPACITY=0` and
//!   `--tokens` different valid tokens in turn, so every request verifies an RS256 signature;
//!   in rounds, like the cached scenarios.
//!
//! It also measures the single-core RS256 validation rate (`OidcAuth::validate` without cache,
//! one thread, 256 distinct tokens) in a probe process of its own (`loadgen --rate-probe
//! SECONDS`), pinned to the server's CPUs while the server is idle, before each round of the
//! distinct-token scenario and after the last, and prints the distinct-token figure against
//! 0.8 x the mean of those rates x the cores the server used. Measuring on the same CPU and
//! between the rounds keeps the machine's drift (other tenants, frequency) out of the ratio.
//!
//! The client is a minimal HTTP/1.1 writer and reader so that it costs little next to the server.
//! By default its connections are tasks of a Tokio runtime that sleeps in `epoll` between
//! responses, as `wrk` does. On loopback the sender of a response runs the receiver's network
//! stack, so waking a sleeping client is charged to the server's CPU (an inter-processor
//! interrupt per wake on a virtual machine). With `--busy-poll` one thread polls non-blocking
//! sockets in a loop and never sleeps, so no response has to wake it: the figures then show
//! what the server itself spends.
//!
//! `--pipeline N` (default 1) sends N requests in one write on each connection and then reads
//! their N responses (HTTP/1.1 pipelining, as `wrk` does with a pipelining script). The server
//! still parses, routes, authenticates and answers every request, but reads them in batches, so
//! the per-request cost of the loopback round trip (system calls, waking the client, TCP
//! segments) is shared by N requests. Latencies are then those of whole batches.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oidc_auth::testing::MockProvider;
use oidc_auth::{OidcAuth, OidcConfig};
use oidc_auth_examples::DEMO_AUDIENCE;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

struct Options {
    server: String,
    seconds: u64,
    connections: usize,
    tokens: usize,
    server_cpus: String,
    busy_poll: bool,
    pipeline: usize,
    /// `--rate-probe SECONDS`: only measure the single-core validation rate and print it.
    rate_probe: Option<u64>,
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        server: String::new(),
        seconds: 10,
        connections: 32,
        tokens: 2000,
        server_cpus: "0".to_owned(),
        busy_poll: false,
        pipeline: 1,
        rate_probe: None,
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--seconds" => {
                options.seconds = value("--seconds")?.parse().map_err(|e| format!("{e}"))?
            }
            "--connections" => {
                options.connections = value("--connections")?
                    .parse()
                    .map_err(|e| format!("{e}"))?
            }
            "--tokens" => {
                options.tokens = value("--tokens")?.parse().map_err(|e| format!("{e}"))?
            }
            "--server-cpus" => options.server_cpus = value("--server-cpus")?,
            "--busy-poll" => options.busy_poll = true,
            "--rate-probe" => {
                options.rate_probe =
                    Some(value("--rate-probe")?.parse().map_err(|e| format!("{e}"))?)
            }
            "--pipeline" => {
                options.pipeline = value("--pipeline")?.parse().map_err(|e| format!("{e}"))?;
                if options.pipeline == 0 {
                    return Err("--pipeline must be at least 1".into());
                }
            }
            other if options.server.is_empty() && !other.starts_with("--") => {
                options.server = other.to_owned()
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if options.server.is_empty() && options.rate_probe.is_none() {
        return Err("usage: loadgen <demo binary> [--seconds N] [--connections N] [--tokens N] [--server-cpus LIST] [--busy-poll] [--pipeline N]".into());
    }
    Ok(options)
}

/// The demo running as a child process.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `taskset` can pin processes here.
fn can_pin() -> bool {
    Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The single-core validation rate, measured for `seconds` by a probe process on the server's
/// CPUs (see the crate documentation).
fn probe_rate(options: &Options, seconds: u64) -> Result<f64, Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let seconds = seconds.to_string();
    let output = if can_pin() {
        Command::new("taskset")
            .args(["-c", &options.server_cpus])
            .arg(&exe)
            .args(["--rate-probe", &seconds])
            .output()?
    } else {
        Command::new(&exe)
            .args(["--rate-probe", &seconds])
            .output()?
    };
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|rate| *rate > 0.0)
        .ok_or_else(|| format!("the rate probe printed {text:?}").into())
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn start_server(
    options: &Options,
    provider: &MockProvider,
    cache_capacity: Option<usize>,
) -> Result<Server, Box<dyn std::error::Error>> {
    let addr = format!("127.0.0.1:{}", free_port()?);
    let mut command = if can_pin() {
        let mut c = Command::new("taskset");
        c.args(["-c", &options.server_cpus, &options.server]);
        c
    } else {
        Command::new(&options.server)
    };
    command
        .env("OIDC_DISCOVERY_URL", provider.discovery_url())
        .env("OIDC_CLIENT_ID", DEMO_AUDIENCE)
        .env("OIDC_AUDIENCE", DEMO_AUDIENCE)
        .env("OIDC_AUTH_DEMO_ADDR", &addr)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    if let Some(capacity) = cache_capacity {
        command.env("OIDC_TOKEN_CACHE_CAPACITY", capacity.to_string());
    }
    let child = command.spawn()?;
    let server = Server { child, addr };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((200, _)) = request(&server.addr, "/public", None).await {
            return Ok(server);
        }
        if Instant::now() > deadline {
            return Err("the demo did not answer within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One request on a fresh connection: (status, body).
async fn request(
    addr: &str,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, Vec<u8>), Box<dyn std::error::Error>> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut buffer = Vec::new();
    stream.write_all(&request_bytes(path, token)).await?;
    read_response(&mut stream, &mut buffer).await
}

fn request_bytes(path: &str, token: Option<&str>) -> Vec<u8> {
    let mut out = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    if let Some(token) = token {
        out.push_str("Authorization: Bearer ");
        out.push_str(token);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Reads one response with a `Content-Length` body; `buffer` keeps any bytes beyond it.
async fn read_response(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> Result<(u16, Vec<u8>), Box<dyn std::error::Error>> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some((status, body)) = take_response(buffer)? {
            return Ok((status, body));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// A response: status and body.
type Response = (u16, Vec<u8>);

/// The first complete response in `buffer`, removed from it; `None` while it is incomplete.
/// Only `Content-Length` bodies, which is what the demos send.
fn take_response(buffer: &mut Vec<u8>) -> Result<Option<Response>, Box<dyn std::error::Error>> {
    let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let header_end = at + 4;
    let head = std::str::from_utf8(&buffer[..header_end])?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("malformed status line")?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())
                .flatten()
        })
        .ok_or("no content-length")?;
    if buffer.len() < header_end + length {
        return Ok(None);
    }
    let body = buffer[header_end..header_end + length].to_vec();
    buffer.drain(..header_end + length);
    Ok(Some((status, body)))
}

/// One connection of the busy-polling client.
struct SpinConnection {
    stream: std::net::TcpStream,
    batches: Vec<Vec<u8>>,
    next: usize,
    /// When the batch in flight was sent, and how many of its responses are still to come.
    sent: Option<(Instant, usize)>,
    buffer: Vec<u8>,
}

/// The `--busy-poll` client: every connection's socket is non-blocking and polled in turn by
/// this one thread until `stop`; it never sleeps, so a response never has to wake it. Each
/// connection sends its batches of `depth` requests in turn. Returns the latencies of the
/// requests sent from `measure_from` on, their count and the errors.
fn spin_client(
    addr: &str,
    batches: Vec<Vec<Vec<u8>>>,
    depth: usize,
    measure_from: Instant,
    stop: Instant,
) -> (Vec<u32>, u64, u64) {
    use std::io::{ErrorKind, Read as _, Write as _};
    let mut latencies = Vec::with_capacity(1 << 20);
    let (mut done, mut errors) = (0u64, 0u64);
    let mut connections = Vec::new();
    for batches in batches {
        let Ok(stream) = std::net::TcpStream::connect(addr) else {
            return (latencies, done, errors + 1);
        };
        if stream.set_nodelay(true).is_err() || stream.set_nonblocking(true).is_err() {
            return (latencies, done, errors + 1);
        }
        connections.push(SpinConnection {
            stream,
            batches,
            next: 0,
            sent: None,
            buffer: Vec::with_capacity(16 * 1024),
        });
    }
    let mut chunk = [0u8; 8192];
    'run: loop {
        let now = Instant::now();
        if now >= stop {
            break;
        }
        for c in &mut connections {
            let Some((sent, pending)) = c.sent else {
                let bytes = &c.batches[c.next % c.batches.len()];
                c.next += 1;
                // A batch is far below the socket buffer: the write completes at once.
                if c.stream.write_all(bytes).is_err() {
                    errors += 1;
                    break 'run;
                }
                c.sent = Some((Instant::now(), depth));
                continue;
            };
            match c.stream.read(&mut chunk) {
                Ok(0) => {
                    errors += 1;
                    break 'run;
                }
                Ok(n) => c.buffer.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(_) => {
                    errors += 1;
                    break 'run;
                }
            }
            let mut pending = pending;
            loop {
                match take_response(&mut c.buffer) {
                    Ok(None) => break,
                    Ok(Some((status, _))) => {
                        pending -= 1;
                        if sent >= measure_from {
                            if status == 200 {
                                done += 1;
                                let micros = sent.elapsed().as_micros().min(u128::from(u32::MAX));
                                latencies.push(micros as u32);
                            } else {
                                errors += 1;
                            }
                        }
                        if pending == 0 {
                            break;
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        break 'run;
                    }
                }
            }
            c.sent = (pending > 0).then_some((sent, pending));
        }
    }
    (latencies, done, errors)
}

/// What one scenario measured.
struct Measured {
    requests: u64,
    errors: u64,
    seconds: f64,
    latencies_us: Vec<u32>,
    server_cpu_seconds: f64,
    /// CPU seconds this process (the load generator) used meanwhile: near one core per core
    /// it runs on means the figures are bounded by the generator, not the server.
    client_cpu_seconds: f64,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let index = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        f64::from(self.latencies_us[index]) / 1000.0
    }

    fn cores(&self) -> f64 {
        self.server_cpu_seconds / self.seconds
    }

    fn client_cores(&self) -> f64 {
        self.client_cpu_seconds / self.seconds
    }

    /// Server CPU time per request, in microseconds.
    fn server_micros_per_request(&self) -> f64 {
        if self.requests == 0 {
            return f64::INFINITY;
        }
        self.server_cpu_seconds * 1e6 / self.requests as f64
    }
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let ticks = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at state, field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let stime: f64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (utime + stime) / ticks
}

/// Peak resident memory of a process in MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The real server process (the child of `taskset`, which execs, so the same pid).
fn server_pid(server: &Server) -> u32 {
    server.child.id()
}

async fn drive(
    server: &Server,
    options: &Options,
    path: &'static str,
    tokens: &[String],
) -> Measured {
    let warm_up = Duration::from_secs(1);
    let run = Duration::from_secs(options.seconds);
    let start = Instant::now();
    let measure_from = start + warm_up;
    let stop = measure_from + run;
    // Each connection walks the tokens from its own offset, `depth` requests to a batch (one
    // write).
    let depth = options.pipeline;
    let batches: Vec<Vec<Vec<u8>>> = (0..options.connections)
        .map(|connection| {
            (0..tokens.len().max(1).div_ceil(depth))
                .map(|b| {
                    (0..depth)
                        .flat_map(|i| {
                            let token = (!tokens.is_empty()).then(|| {
                                &tokens[(b * depth + i + connection * 7919) % tokens.len()]
                            });
                            request_bytes(path, token.map(String::as_str))
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let mut tasks = Vec::new();
    let task_connections = if options.busy_poll {
        let addr = server.addr.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            spin_client(&addr, batches, depth, measure_from, stop)
        }));
        Vec::new()
    } else {
        batches
    };
    for batches in task_connections {
        let addr = server.addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(1 << 16);
            let (mut done, mut errors) = (0u64, 0u64);
            let Ok(mut stream) = TcpStream::connect(&addr).await else {
                return (latencies, done, 1);
            };
            let _ = stream.set_nodelay(true);
            let mut buffer = Vec::with_capacity(16 * 1024);
            let mut next = 0usize;
            loop {
                let sent = Instant::now();
                if sent >= stop {
                    break;
                }
                let bytes = &batches[next % batches.len()];
                next += 1;
                let measured = sent >= measure_from;
                let mut broken = stream.write_all(bytes).await.is_err();
                for _ in 0..depth {
                    if broken {
                        break;
                    }
                    match read_response(&mut stream, &mut buffer).await {
                        Ok((200, _)) if measured => {
                            done += 1;
                            let micros = sent.elapsed().as_micros().min(u128::from(u32::MAX));
                            latencies.push(micros as u32);
                        }
                        Ok((200, _)) => {}
                        Ok(_) => errors += u64::from(measured),
                        Err(_) => broken = true,
                    }
                }
                if broken {
                    errors += u64::from(measured);
                    match TcpStream::connect(&addr).await {
                        Ok(s) => {
                            stream = s;
                            buffer.clear();
                        }
                        Err(_) => break,
                    }
                }
            }
            (latencies, done, errors)
        }));
    }
    tokio::time::sleep_until((measure_from).into()).await;
    let cpu_before = cpu_seconds(server_pid(server));
    let client_before = cpu_seconds(std::process::id());
    let measured_start = Instant::now();
    let mut latencies = Vec::new();
    let (mut requests, mut errors) = (0, 0);
    let mut cpu_after = None;
    for task in tasks {
        if let Ok((l, d, e)) = task.await {
            if cpu_after.is_none() {
                cpu_after = Some((
                    cpu_seconds(server_pid(server)),
                    cpu_seconds(std::process::id()),
                    measured_start.elapsed(),
                ));
            }
            latencies.extend(l);
            requests += d;
            errors += e;
        }
    }
    let (cpu_after, client_after, elapsed) = cpu_after.unwrap_or_else(|| {
        (
            cpu_seconds(server_pid(server)),
            cpu_seconds(std::process::id()),
            measured_start.elapsed(),
        )
    });
    latencies.sort_unstable();
    Measured {
        requests,
        errors,
        seconds: elapsed.as_secs_f64().max(run.as_secs_f64()),
        latencies_us: latencies,
        server_cpu_seconds: cpu_after - cpu_before,
        client_cpu_seconds: client_after - client_before,
    }
}

/// Rounds of the cached scenarios.
const ROUNDS: u64 = 5;

/// The smallest and the largest of `values`.
fn spread(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)))
}

/// One scenario's rounds as one measurement.
fn pool(rounds: Vec<Measured>) -> Measured {
    let mut all = Measured {
        requests: 0,
        errors: 0,
        seconds: 0.0,
        latencies_us: Vec::new(),
        server_cpu_seconds: 0.0,
        client_cpu_seconds: 0.0,
    };
    for m in rounds {
        all.requests += m.requests;
        all.errors += m.errors;
        all.seconds += m.seconds;
        all.server_cpu_seconds += m.server_cpu_seconds;
        all.client_cpu_seconds += m.client_cpu_seconds;
        all.latencies_us.extend(m.latencies_us);
    }
    all.latencies_us.sort_unstable();
    all
}

/// `OidcAuth::validate` without cache on this thread for `seconds`: validations per second.
async fn single_core_rate(provider: &MockProvider, tokens: &[String], seconds: u64) -> f64 {
    let config = OidcConfig::builder()
        .discovery_url(provider.discovery_url())
        .client_id(DEMO_AUDIENCE)
        .audience(DEMO_AUDIENCE)
        .token_cache_capacity(0)
        .build();
    let Ok(config) = config else {
        return 0.0;
    };
    let auth = OidcAuth::new(config);
    if auth.warm_up().await.is_err() {
        return 0.0;
    }
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < Duration::from_secs(seconds) {
        for token in tokens.iter().take(256) {
            if auth.validate(token).await.is_ok() {
                done += 1;
            }
        }
    }
    done as f64 / start.elapsed().as_secs_f64()
}

fn print_row(name: &str, m: &Measured, public: f64) {
    println!(
        "{name:<24} {:>10.0} {:>9.2} {:>9.2} {:>7} {:>8.2} {:>7.2} {:>7.2}",
        m.rate(),
        m.percentile(0.50),
        m.percentile(0.99),
        m.errors,
        m.rate() / public,
        m.cores(),
        m.client_cores(),
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = options()?;
    let provider = MockProvider::start().await?;
    let mint = |sub: &str| {
        provider
            .token()
            .audience(DEMO_AUDIENCE)
            .sub(sub)
            .scope("openid profile")
            .claim("groups", serde_json::json!(["staff"]))
            .expires_in(3600)
            .sign()
    };
    if let Some(seconds) = options.rate_probe {
        let tokens: Vec<String> = (0..256).map(|i| mint(&format!("probe-{i}"))).collect();
        println!("{}", single_core_rate(&provider, &tokens, seconds).await);
        return Ok(());
    }
    let repeated = vec![mint("alice")];
    let distinct: Vec<String> = (0..options.tokens)
        .map(|i| mint(&format!("user-{i}")))
        .collect();

    let cached = start_server(&options, &provider, None).await?;
    // The cached scenarios alternate in rounds, so that drift of the machine (other tenants,
    // frequency) hits them alike; each scenario's figures are pooled over its rounds.
    let round = Options {
        seconds: (options.seconds / ROUNDS).max(1),
        server: options.server.clone(),
        server_cpus: options.server_cpus.clone(),
        ..options
    };
    let (mut public, mut public_header, mut one) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        public.push(drive(&cached, &round, "/public", &[]).await);
        public_header.push(drive(&cached, &round, "/public", &repeated).await);
        one.push(drive(&cached, &round, "/me", &repeated).await);
    }
    // Each round's ratio, to show how much of the pooled one is the machine's drift.
    let cached_ratios: Vec<f64> = one
        .iter()
        .zip(&public)
        .map(|(one, public)| one.rate() / public.rate())
        .collect();
    let (public, public_header, one) = (pool(public), pool(public_header), pool(one));
    let rss_cached = peak_rss_mib(server_pid(&cached));
    drop(cached);

    let uncached = start_server(&options, &provider, Some(0)).await?;
    let (mut rates, mut many) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        rates.push(probe_rate(&options, 1)?);
        many.push(drive(&uncached, &round, "/me", &distinct).await);
    }
    rates.push(probe_rate(&options, 1)?);
    // Each round against the probes on either side of it: requests per second per core, as a
    // fraction of the validation rate.
    let distinct_fractions: Vec<f64> = many
        .iter()
        .zip(rates.windows(2))
        .map(|(m, probes)| m.rate() / m.cores().max(0.01) / ((probes[0] + probes[1]) / 2.0))
        .collect();
    let many = pool(many);
    let rss_uncached = peak_rss_mib(server_pid(&uncached));
    drop(uncached);
    let rate = rates.iter().sum::<f64>() / rates.len() as f64;
    let (slowest, fastest) = spread(&rates);

    let name = std::path::Path::new(&options.server)
        .file_name()
        .map_or_else(
            || options.server.clone(),
            |n| n.to_string_lossy().into_owned(),
        );
    println!(
        "{name}: {} s per scenario (cached ones in {ROUNDS} alternating rounds), {} connections, {} distinct tokens, server on CPUs {}, {} client{}",
        options.seconds,
        options.connections,
        options.tokens,
        options.server_cpus,
        if options.busy_poll {
            "busy-polling"
        } else {
            "epoll"
        },
        if options.pipeline > 1 {
            format!(", {} requests pipelined per write", options.pipeline)
        } else {
            String::new()
        }
    );
    println!(
        "{:<24} {:>10} {:>9} {:>9} {:>7} {:>8} {:>7} {:>7}",
        "scenario", "req/s", "p50 ms", "p99 ms", "errors", "x public", "cores", "client"
    );
    let base = public.rate();
    print_row("/public", &public, base);
    print_row("/public + same header", &public_header, base);
    print_row("/me, one token", &one, base);
    print_row("/me, distinct tokens", &many, base);
    let target = 0.8 * rate * many.cores();
    let (distinct_lo, distinct_hi) = spread(&distinct_fractions);
    let (cached_lo, cached_hi) = spread(&cached_ratios);
    println!(
        "single-core RS256 validation rate (probe on the server's CPUs, no cache): {rate:.0}/s \
         (probes {slowest:.0} to {fastest:.0}); \
         distinct-token target 0.8 x rate x {:.2} cores = {target:.0}/s: {} \
         (per round, req/s per core / rate: {distinct_lo:.2} to {distinct_hi:.2})",
        many.cores(),
        if many.rate() >= target {
            "met"
        } else {
            "NOT met"
        },
    );
    // Where the server's time goes on the distinct-token path: the cached path plus what a
    // validation adds, against what the probe spends on one.
    let cached_path = one.server_micros_per_request();
    let distinct_path = many.server_micros_per_request();
    let validation = 1e6 / rate;
    println!(
        "server CPU per request: /public {:.2} us, /me one token {cached_path:.2} us, /me distinct \
         tokens {distinct_path:.2} us; the distinct-token path adds {:.2} us to the cached one, against \
         {validation:.2} us per validation in the probe; at the probe's cost, the distinct-token \
         figure can reach at most {:.2} x rate per core under this load shape (validation / \
         (validation + cached path))",
        public.server_micros_per_request(),
        distinct_path - cached_path,
        validation / (validation + cached_path),
    );
    println!(
        "repeated-token ratio {:.2} (target 0.90): {} (rounds {cached_lo:.2} to {cached_hi:.2})",
        one.rate() / base,
        if one.rate() >= 0.9 * base {
            "met"
        } else {
            "NOT met"
        },
    );
    println!(
        "server peak RSS: {rss_cached:.1} MiB (cached run), {rss_uncached:.1} MiB (uncached run); limit 64 MiB: {}",
        if rss_cached.max(rss_uncached) < 64.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}
