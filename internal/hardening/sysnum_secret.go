//go:build linux && (amd64 || arm64)

package hardening

const sysMemfdSecret = 447
