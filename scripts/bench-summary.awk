# Reads `go test -bench` output and prints the performance targets as one
# table and, as its last line, one JSON object. Targets (targets_met is true
# only when every one is met):
#   broker HTTP mint at 64 clients >= 60% of the same-run raw limit, p99 <= 15 ms;
#   backend credential read at 64 clients (SQLite) >= 90% of the broker's
#     HTTP mint throughput in the same run, p99 <= 20 ms;
#   `agentkeys run -- true` <= 8 ms median;
#   daemon socket read <= 2 ms median;
#   flat cost (when the scale bench ran): every full/empty ratio <= 1.5.
#   gateway (when its bench ran): <= 1 ms added p50 against a direct call to
#     the same HTTPS fixture, streaming >= 80% of the direct throughput.
# Reported, not counted: PostgreSQL credential read, the frozen-replica
# ledger and the credential read p90 with 500 awaiters.
{ print > "/dev/stderr" }
function metric(name,   i) { for (i = 3; i < NF; i++) if ($(i+1) == name) return $i; return "" }
function param(key,   n, i, a, kv) {
  n = split($1, a, "/")
  for (i = 1; i <= n; i++) { split(a[i], kv, "="); if (kv[1] == key) { sub(/-[0-9]+$/, "", kv[2]); return kv[2] } }
  return ""
}
function yes(b) { return b ? "yes" : "NO" }
/^BenchmarkMintOIDCJWT\/raw\//  { c = param("clients"); raw[c] = metric("mints/s") }
/^BenchmarkMintOIDCJWT\/http\// { c = param("clients"); http[c] = metric("mints/s"); p50[c] = metric("p50-ms"); p99[c] = metric("p99-ms") }
/^BenchmarkCredentialRead\/engine=/ { k = param("engine") "/" param("clients"); rd[k] = metric("reads/s"); rd50[k] = metric("p50-ms"); rd99[k] = metric("p99-ms") }
/^BenchmarkRunTrue/    { run = metric("ms/median") }
/^BenchmarkSocketRead/ { sock = metric("median-ms") }
/^BenchmarkGateway/ { gwp50 = metric("added-p50-ms"); gwp99 = metric("added-p99-ms"); gwratio = metric("throughput-ratio"); gwdirect = metric("direct-MB/s"); gwvia = metric("gateway-MB/s") }
/^BenchmarkFrozenReplica/ { frozen = metric("frozen-ratio"); frozenWorst = metric("worst-ms") }
/^BenchmarkCredentialReadWithAwaiters\/awaiters=/ { c = param("awaiters"); readp90[c] = metric("p90-ms") }
/^BenchmarkFlatCost\/engine=/ {
  e = param("engine"); op = param("op")
  if (!(e in flatSeen)) { flatSeen[e] = 1; flatEngines = flatEngines (flatEngines == "" ? "" : " ") e }
  if (!((e, op) in flatRatio)) { ops[e] = ops[e] (ops[e] == "" ? "" : " ") op }
  flatRatio[e, op] = metric("ratio"); flatEmpty[e, op] = metric("empty-us"); flatFull[e, op] = metric("full-us")
}
END {
  ok = 1
  print ""
  print "AgentKeys benchmarks, one run on this machine"
  printf "%-58s %-42s %-22s %s\n", "figure", "measured", "target", "met"
  line = "------------------------------------------------------------------------------------------------------------------------------"
  print line
  json = "{\"bench\":\"agentkeys\",\"broker\":{"
  n = split("1 16 64", cs, " "); sep = 0
  for (i = 1; i <= n; i++) {
    c = cs[i]
    if (raw[c] == "" || http[c] == "") continue
    ratio = http[c] / raw[c]
    m = sprintf("%.0f/s = %.0f%% of raw %.0f/s, p99 %.2f ms", http[c], 100 * ratio, raw[c], p99[c])
    if (c == 64) { r64 = ratio; q64 = p99[c]; met = (ratio >= 0.6 && p99[c] <= 15); ok = ok && met; printf "%-58s %-42s %-22s %s\n", "broker mint-oidc-jwt, 64 clients", m, ">= 60% raw, p99 <= 15", yes(met) }
    else printf "%-58s %-42s %-22s %s\n", sprintf("broker mint-oidc-jwt, %d clients", c), m, "(reported)", "-"
    json = json sprintf("%s\"clients_%s\":{\"http_per_s\":%.0f,\"raw_per_s\":%.0f,\"ratio\":%.3f,\"p50_ms\":%.2f,\"p99_ms\":%.2f}", (sep ? "," : ""), c, http[c], raw[c], ratio, p50[c], p99[c])
    sep = 1
  }
  json = json "}"
  if (r64 == "") ok = 0
  json = json ",\"credential_read\":{"; sep = 0
  n = split("sqlite/16 sqlite/64 postgres/16 postgres/64", ks, " ")
  for (i = 1; i <= n; i++) {
    k = ks[i]
    if (rd[k] == "") continue
    split(k, kp, "/")
    vs = (http[kp[2]] > 0) ? rd[k] / http[kp[2]] : 0
    m = sprintf("%.0f/s = %.0f%% of mint, p99 %.2f ms", rd[k], 100 * vs, rd99[k])
    if (k == "sqlite/64") { met = (vs >= 0.9 && rd99[k] <= 20); readOK = met; printf "%-58s %-42s %-22s %s\n", "backend credential read, SQLite, 64 clients", m, ">= 90% mint, p99 <= 20", yes(met) }
    else printf "%-58s %-42s %-22s %s\n", sprintf("backend credential read, %s, %s clients", (kp[1] == "sqlite" ? "SQLite" : "PostgreSQL"), kp[2]), m, "(reported)", "-"
    json = json sprintf("%s\"%s_%s\":{\"per_s\":%.0f,\"vs_mint\":%.3f,\"p50_ms\":%.2f,\"p99_ms\":%.2f}", (sep ? "," : ""), kp[1], kp[2], rd[k], vs, rd50[k], rd99[k])
    sep = 1
  }
  json = json "}"
  ok = ok && readOK
  if (run != "") { met = (run <= 8); printf "%-58s %-42s %-22s %s\n", "agentkeys run <agent> -- true, median", sprintf("%.2f ms", run), "<= 8 ms", yes(met); json = json sprintf(",\"run_true_median_ms\":%.2f", run) } else met = 0
  ok = ok && met
  if (sock != "") { met = (sock <= 2); printf "%-58s %-42s %-22s %s\n", "daemon socket credential read, median", sprintf("%.2f ms", sock), "<= 2 ms", yes(met); json = json sprintf(",\"socket_read_median_ms\":%.2f", sock) } else met = 0
  ok = ok && met
  if (flatEngines != "") {
    json = json ",\"flat_cost\":{"; sep = 0
    ne = split(flatEngines, es, " ")
    for (i = 1; i <= ne; i++) {
      e = es[i]; no = split(ops[e], os, " ")
      for (j = 1; j <= no; j++) {
        op = os[j]; r = flatRatio[e, op]; met = (r != "" && r <= 1.5); ok = ok && met
        printf "%-58s %-42s %-22s %s\n", sprintf("flat cost %s, %s (1M credentials, 10M audit rows)", e, op), sprintf("%.2fx (%.0f us full vs %.0f us empty)", r, flatFull[e, op], flatEmpty[e, op]), "<= 1.5x", yes(met)
        json = json sprintf("%s\"%s_%s\":%.3f", (sep ? "," : ""), e, op, r); sep = 1
      }
    }
    json = json "}"
  } else printf "%-58s %-42s %-22s %s\n", "flat cost (make bench-scale)", "not run", "<= 1.5x", "-"
  if (frozen != "") { printf "%-58s %-42s %-22s %s\n", "audit ledger, one replica frozen: the other's append rate", sprintf("%.0f%%, slowest %.1f ms", 100 * frozen, frozenWorst), "(reported)", "-"; json = json sprintf(",\"frozen_replica_ratio\":%.3f,\"frozen_replica_worst_ms\":%.1f", frozen, frozenWorst) }
  if (readp90[0] != "" && readp90[500] != "" && readp90[0] > 0) {
    moved = readp90[500] / readp90[0] - 1
    printf "%-58s %-42s %-22s %s\n", "credential read p90, idle vs 500 awaiters (SQLite)", sprintf("%.2f / %.2f ms (%+.0f%%)", readp90[0], readp90[500], 100 * moved), "(goal: under +20%)", "-"
    json = json sprintf(",\"credential_read_p90_ms\":{\"awaiters_0\":%.2f,\"awaiters_500\":%.2f,\"moved\":%.3f}", readp90[0], readp90[500], moved)
  }
  print line
  if (gwp50 != "") {
    met = (gwp50 <= 1); ok = ok && met
    printf "%-58s %-42s %-22s %s\n", "gateway added latency (p50, p99)", sprintf("%+.3f ms, %+.3f ms", gwp50, gwp99), "p50 <= 1 ms", yes(met)
    met = (gwratio >= 0.8); ok = ok && met
    printf "%-58s %-42s %-22s %s\n", "gateway streaming throughput vs direct", sprintf("%.0f vs %.0f MB/s = %.0f%%", gwvia, gwdirect, 100 * gwratio), ">= 80%", yes(met)
    json = json sprintf(",\"gateway\":{\"added_p50_ms\":%.3f,\"added_p99_ms\":%.3f,\"direct_mb_s\":%.1f,\"gateway_mb_s\":%.1f,\"throughput_ratio\":%.3f}", gwp50, gwp99, gwdirect, gwvia, gwratio)
  }
  printf "all targets met: %s\n", (ok ? "yes" : "no")
  json = json sprintf(",\"targets_met\":%s}", (ok ? "true" : "false"))
  print json
}
