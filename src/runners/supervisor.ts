/**
 * The step supervisor: one small process per pipeline run (per network mode), started inside the
 * run's sandbox, that starts each step's shell on request. The sandbox's set-up (namespaces, mounts,
 * the supervisor's start) is then paid once per run instead of once per step.
 *
 * Two implementations speak the same protocol: Perl (perl-base is part of every Debian/Ubuntu system,
 * only core modules of perl-base are used, and it starts in ~3 ms) and Node (always there, but ~40 ms
 * to start — more than the whole of a 10-step trivial pipeline's budget). Perl is used when
 * `/usr/bin/perl` exists.
 *
 * Wire format, both directions over the supervisor's stdin/stdout (relayed by the process launcher):
 * frames `[u32 payload length][u8 kind][u32 step id][payload]`, big-endian.
 * - requests: RUN (payload: NUL-separated cwd, HOME parent, HOME prefix, script, then `K=V` env
 *   entries), KILL (payload: `TERM` or `KILL`);
 * - replies: READY, STARTED (payload: pid in the sandbox, ASCII), OUTPUT (raw bytes), EXIT (payload:
 *   `<exit code or -1> <signal number or 0>`), CLOSED (all output delivered), ERROR (message).
 *
 * Each step is `/bin/sh -c <script>` in its own session and process group with a fresh HOME; after the
 * shell exits its group is killed (background children do not outlive their step) and pipes still held
 * by a process that left the group are given up after 2 s. Whenever no step is running, every other
 * process in the sandbox's pid namespace is killed (what escaped with setsid does not outlive its step,
 * and nothing runs while the platform collects artifacts). stdin closing kills everything and exits.
 * stdout is a blocking pipe: a slow reader slows the steps down through their own pipes.
 *
 * Steps of one run share the sandbox: they can see each other's processes, as they share the
 * workspace. Nothing outside the run is in its view.
 */

export const FRAME = {
  ready: 0,
  started: 1,
  output: 2,
  exit: 3,
  closed: 4,
  error: 5,
} as const;

export const REQUEST = { run: 1, kill: 2 } as const;

export const FRAME_HEADER_BYTES = 9;

/** Argument telling the supervisor it runs in a pid namespace of its own (it may then sweep it). */
export const OWN_PID_NAMESPACE_ARG = 'own-pid-namespace';

export function frame(kind: number, id: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  head.writeUInt32BE(payload.length, 0);
  head[4] = kind;
  head.writeUInt32BE(id, 5);
  return Buffer.concat([head, payload]);
}

export const PERL_PATH = '/usr/bin/perl';

export const PERL_SUPERVISOR = String.raw`
use strict;
use warnings;
use POSIX ();
use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK);
use Errno qw(EINTR EAGAIN);
my $own_ns = grep { $_ eq 'own-pid-namespace' } @ARGV;
my (%steps, %by_pid);
pipe(my $sig_r, my $sig_w) or die "pipe: $!";
nonblock($sig_r); nonblock($sig_w);
$SIG{CHLD} = sub { syswrite($sig_w, 'x') };
$SIG{PIPE} = 'IGNORE';
$SIG{$_} = 'IGNORE' for qw(INT HUP);
binmode STDIN; binmode STDOUT;
sub nonblock { my $fh = shift; my $f = fcntl($fh, F_GETFL, 0); fcntl($fh, F_SETFL, $f | O_NONBLOCK); }
sub out {
  my ($kind, $id, $payload) = @_;
  $payload = '' unless defined $payload;
  my $buf = pack('NCN', length($payload), $kind, $id) . $payload;
  my $off = 0;
  while ($off < length $buf) {
    my $n = syswrite(STDOUT, $buf, length($buf) - $off, $off);
    if (!defined $n) { next if $! == EINTR; exit 0; }
    $off += $n;
  }
}
sub sweep {
  return unless $own_ns && getppid() == 1;
  kill 'KILL', -1;
}
sub make_home {
  my ($parent, $prefix) = @_;
  mkdir $parent, 0700;
  for (1 .. 100) {
    my $dir = $parent . '/' . $prefix . join('', map { ('a'..'z', 'A'..'Z', 0..9)[int rand 62] } 1 .. 6);
    return $dir if mkdir $dir, 0700;
  }
  return undef;
}
sub run_step {
  my ($id, $payload) = @_;
  my ($cwd, $home_parent, $prefix, $script, @env) = split /\0/, $payload, -1;
  my $home = make_home($home_parent, $prefix);
  return out(5, $id, "could not create HOME: $!") unless defined $home;
  pipe(my $r, my $w) or return out(5, $id, "pipe: $!");
  my $pid = fork();
  return out(5, $id, "fork: $!") unless defined $pid;
  if ($pid == 0) {
    POSIX::setsid();
    $SIG{$_} = 'DEFAULT' for qw(CHLD PIPE INT HUP TERM);
    open(STDIN, '<', '/dev/null');
    open(STDOUT, '>&', $w);
    open(STDERR, '>&', $w);
    chdir $cwd or do { print STDERR "cannot enter $cwd: $!\n"; POSIX::_exit(126); };
    %ENV = ();
    for my $kv (@env) { my $i = index($kv, '='); $ENV{substr($kv, 0, $i)} = substr($kv, $i + 1) if $i > 0; }
    $ENV{HOME} = $home;
    exec { '/bin/sh' } 'sh', '-c', $script;
    print STDERR "cannot start /bin/sh: $!\n";
    POSIX::_exit(127);
  }
  close $w;
  nonblock($r);
  $steps{$id} = { pid => $pid, fh => $r, exited => 0, closed => 0, drain => undef };
  $by_pid{$pid} = $id;
  out(1, $id, $pid);
}
sub finish_if_done {
  my $id = shift;
  my $s = $steps{$id} or return;
  return unless $s->{exited} && $s->{closed};
  delete $steps{$id};
  sweep() unless %steps;
  out(4, $id, '');
}
sub close_output {
  my $id = shift;
  my $s = $steps{$id} or return;
  return if $s->{closed};
  close $s->{fh};
  $s->{closed} = 1;
  finish_if_done($id);
}
sub reap {
  while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) {
    my $status = $?;
    my $id = delete $by_pid{$pid};
    next unless defined $id;
    kill 'KILL', -$pid;
    my $code = POSIX::WIFEXITED($status) ? POSIX::WEXITSTATUS($status) : -1;
    my $sig = POSIX::WIFSIGNALED($status) ? POSIX::WTERMSIG($status) : 0;
    my $s = $steps{$id};
    $s->{exited} = 1;
    $s->{drain} = time + 2;
    out(3, $id, "$code $sig");
    finish_if_done($id);
  }
}
sub shutdown_all {
  kill 'KILL', -$_->{pid} for values %steps;
  sweep();
  exit 0;
}
my $in = '';
out(0, 0, '');
while (1) {
  reap();
  my $now = time;
  for my $id (keys %steps) {
    my $s = $steps{$id};
    close_output($id) if $s->{exited} && !$s->{closed} && $s->{drain} <= $now;
  }
  my $rin = '';
  vec($rin, fileno(STDIN), 1) = 1;
  vec($rin, fileno($sig_r), 1) = 1;
  my $waiting = 0;
  for my $s (values %steps) {
    next if $s->{closed};
    vec($rin, fileno($s->{fh}), 1) = 1;
    $waiting = 1 if $s->{exited};
  }
  my $n = select(my $rout = $rin, undef, undef, $waiting ? 0.25 : undef);
  if ($n < 0) { next if $! == EINTR; die "select: $!"; }
  if (vec($rout, fileno($sig_r), 1)) { sysread($sig_r, my $junk, 4096); }
  if (vec($rout, fileno(STDIN), 1)) {
    my $k = sysread(STDIN, $in, 65536, length $in);
    if (!defined $k) { die "stdin: $!" unless $! == EINTR || $! == EAGAIN; }
    elsif ($k == 0) { shutdown_all(); }
    while (length($in) >= 9) {
      my ($len, $kind, $id) = unpack('NCN', $in);
      last if length($in) < 9 + $len;
      my $payload = substr($in, 9, $len);
      substr($in, 0, 9 + $len) = '';
      if ($kind == 1) { run_step($id, $payload); }
      elsif ($kind == 2) {
        my $s = $steps{$id};
        kill $payload, -$s->{pid} if $s && !$s->{exited} && ($payload eq 'TERM' || $payload eq 'KILL');
      }
    }
  }
  for my $id (keys %steps) {
    my $s = $steps{$id};
    next if $s->{closed} || !vec($rout, fileno($s->{fh}), 1);
    my $k = sysread($s->{fh}, my $data, 65536);
    if (defined $k && $k > 0) { out(2, $id, $data); }
    elsif (defined $k) { close_output($id); }
    elsif ($! != EAGAIN && $! != EINTR) { close_output($id); }
  }
}
`;

/** The same supervisor in Node, for hosts without Perl. CommonJS, no dependencies. */
export const NODE_SUPERVISOR = `
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { constants } = require('node:os');
const DRAIN_MS = 2000;
const steps = new Map();
const ownPidNamespace = process.argv.includes('own-pid-namespace');
const out = (kind, id, payload) => {
  const head = Buffer.allocUnsafe(9);
  head.writeUInt32BE(payload.length, 0);
  head[4] = kind;
  head.writeUInt32BE(id, 5);
  process.stdout.write(payload.length > 0 ? Buffer.concat([head, payload]) : head);
};
const text = (kind, id, s) => out(kind, id, Buffer.from(String(s)));
const killGroup = (pid, signal) => { try { process.kill(-pid, signal); } catch {} };
const sweep = () => {
  if (!ownPidNamespace || process.ppid !== 1) return;
  let entries = [];
  try { entries = fs.readdirSync('/proc'); } catch { return; }
  for (const e of entries) {
    if (!/^[0-9]+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid || pid === 1) continue;
    try { process.kill(pid, 'SIGKILL'); } catch {}
  }
};
const run = (id, payload) => {
  const [cwd, homeParent, homePrefix, script, ...env] = payload.toString('utf8').split('\\0');
  let home;
  try {
    fs.mkdirSync(homeParent, { recursive: true, mode: 0o700 });
    home = fs.mkdtempSync(path.join(homeParent, homePrefix));
  } catch (err) {
    text(5, id, 'could not create HOME: ' + err.message);
    return;
  }
  const childEnv = {};
  for (const kv of env) { const i = kv.indexOf('='); if (i > 0) childEnv[kv.slice(0, i)] = kv.slice(i + 1); }
  childEnv.HOME = home;
  let child;
  try {
    child = spawn('/bin/sh', ['-c', script], { cwd, env: childEnv, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    text(5, id, (err && err.message) || err);
    return;
  }
  if (child.pid === undefined) {
    child.once('error', (err) => text(5, id, err.message));
    return;
  }
  const step = { pid: child.pid, exited: false, closed: false };
  steps.set(id, step);
  text(1, id, child.pid);
  const data = (chunk) => out(2, id, chunk);
  child.stdout.on('data', data);
  child.stderr.on('data', data);
  child.on('error', () => {});
  let drain;
  const closed = () => {
    if (step.closed) return;
    step.closed = true;
    clearTimeout(drain);
    steps.delete(id);
    if (steps.size === 0) sweep();
    out(4, id, Buffer.alloc(0));
  };
  child.on('exit', (code, signal) => {
    step.exited = true;
    killGroup(step.pid, 'SIGKILL');
    text(3, id, (code === null ? -1 : code) + ' ' + (signal ? constants.signals[signal] : 0));
    drain = setTimeout(() => { child.stdout.destroy(); child.stderr.destroy(); closed(); }, DRAIN_MS);
  });
  child.on('close', closed);
};
let input = Buffer.alloc(0);
process.stdin.on('data', (chunk) => {
  input = Buffer.concat([input, chunk]);
  while (input.length >= 9) {
    const len = input.readUInt32BE(0);
    if (input.length < 9 + len) break;
    const kind = input[4];
    const id = input.readUInt32BE(5);
    const payload = input.subarray(9, 9 + len);
    input = input.subarray(9 + len);
    if (kind === 1) run(id, payload);
    else if (kind === 2) {
      const s = steps.get(id);
      const signal = payload.toString();
      if (s && !s.exited && (signal === 'TERM' || signal === 'KILL')) killGroup(s.pid, 'SIG' + signal);
    }
  }
});
process.stdin.on('end', () => {
  for (const s of steps.values()) killGroup(s.pid, 'SIGKILL');
  sweep();
  process.exit(0);
});
for (const signal of ['SIGINT', 'SIGHUP']) process.on(signal, () => {});
out(0, 0, Buffer.alloc(0));
`;
