# Reads `go test -bench` output and prints the performance targets as text and
# one JSON line. Targets: broker HTTP mint >= 50% of the raw limit and p99
# <= 20 ms at 64 clients; `agentkeys run -- true` <= 25 ms median; daemon
# socket read <= 2 ms median. Also: backend credential-read p90 idle and
# with 500 openers long-polling (reported, not a target).
{ print > "/dev/stderr" }
function metric(name,   i) { for (i = 3; i < NF; i++) if ($(i+1) == name) return $i; return "" }
/^BenchmarkMintOIDCJWT\/raw\/clients=/  { split($1, a, "="); c = a[2]; sub(/-[0-9]+$/, "", c); raw[c] = metric("mints/s"); rawp99[c] = metric("p99-ms") }
/^BenchmarkMintOIDCJWT\/http\/clients=/ { split($1, a, "="); c = a[2]; sub(/-[0-9]+$/, "", c); http[c] = metric("mints/s"); p50[c] = metric("p50-ms"); p99[c] = metric("p99-ms") }
/^BenchmarkRunTrue/    { run = metric("ms/median") }
/^BenchmarkSocketRead/ { sock = metric("median-ms") }
/^BenchmarkFrozenReplica/ { frozen = metric("frozen-ratio"); frozenWorst = metric("worst-ms") }
/^BenchmarkCredentialReadWithAwaiters\/awaiters=/ { split($1, a, "="); c = a[2]; sub(/-[0-9]+$/, "", c); readp90[c] = metric("p90-ms") }
END {
  print ""
  print "AgentKeys benchmarks, one run on this machine"
  print "-------------------------------------------------------"
  n = split("1 16 64", cs, " ")
  json = "{\"bench\":\"agentkeys\",\"broker\":{"
  for (i = 1; i <= n; i++) {
    c = cs[i]
    if (raw[c] == "" || http[c] == "") continue
    ratio = http[c] / raw[c]
    printf "broker mint-oidc-jwt, %2d clients: %7.0f mints/s over HTTP = %3.0f%% of the raw limit (%7.0f/s); p50 %6.2f ms, p99 %6.2f ms\n", c, http[c], 100 * ratio, raw[c], p50[c], p99[c]
    json = json sprintf("%s\"clients_%s\":{\"http_per_s\":%.0f,\"raw_per_s\":%.0f,\"ratio\":%.3f,\"p50_ms\":%.2f,\"p99_ms\":%.2f}", (sep ? "," : ""), c, http[c], raw[c], ratio, p50[c], p99[c])
    sep = 1
    if (c == 64) { r64 = ratio; q64 = p99[c] }
  }
  json = json "}"
  if (run != "")  { printf "agentkeys run <agent> -- true: %.2f ms median (target <= 25 ms)\n", run; json = json sprintf(",\"run_true_median_ms\":%.2f", run) }
  if (sock != "") { printf "daemon socket credential read: %.2f ms median (target <= 2 ms)\n", sock; json = json sprintf(",\"socket_read_median_ms\":%.2f", sock) }
  if (frozen != "") { printf "audit ledger, one replica frozen: the other keeps %.0f%% of its append rate, slowest append %.1f ms\n", 100 * frozen, frozenWorst; json = json sprintf(",\"frozen_replica_ratio\":%.3f,\"frozen_replica_worst_ms\":%.1f", frozen, frozenWorst) }
  if (readp90[0] != "" && readp90[500] != "" && readp90[0] > 0) {
    moved = readp90[500] / readp90[0] - 1
    printf "backend credential read (SQLite): p90 %.2f ms idle, %.2f ms with 500 awaiters (%+.0f%%; goal: under +20%%)\n", readp90[0], readp90[500], 100 * moved
    json = json sprintf(",\"credential_read_p90_ms\":{\"awaiters_0\":%.2f,\"awaiters_500\":%.2f,\"moved\":%.3f}", readp90[0], readp90[500], moved)
  }
  ok = (r64 != "" && r64 >= 0.5 && q64 <= 20 && run != "" && run <= 25 && sock != "" && sock <= 2)
  if (r64 != "") printf "broker at 64 clients: %.0f%% of raw (target >= 50%%), p99 %.2f ms (target <= 20 ms)\n", 100 * r64, q64
  printf "all targets met: %s\n", (ok ? "yes" : "no")
  json = json sprintf(",\"targets_met\":%s}", (ok ? "true" : "false"))
  print json
}
