package daemon

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"slices"
)

// Mask is what replaces a secret in command output.
const Mask = "****"

// minPartialForm is the shortest secret-derived fragment masked when it
// is cut by truncation or base64 alignment (shorter ones would mask
// ordinary text).
const minPartialForm = 8

// secretForms returns the byte strings that reveal secret: the secret
// itself, its standard and URL-safe base64 (padded and not), the stable
// middle of its base64 at the two other byte alignments (as when the
// secret is encoded after a prefix, e.g. "user:secret"), and its hex. The
// longest come first so that a longer form is masked before a shorter one
// it contains.
func secretForms(secret []byte) [][]byte {
	if len(secret) == 0 {
		return nil
	}
	forms := [][]byte{bytes.Clone(secret)}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		full := []byte(enc.EncodeToString(secret))
		forms = append(forms, full, bytes.TrimRight(full, "="))
		for k := 1; k <= 2; k++ {
			pre := append(make([]byte, k), secret...)
			e := []byte(enc.EncodeToString(pre))
			e = bytes.TrimRight(e, "=")
			// Drop the first quantum (mixes prefix bytes) and the last
			// partial quantum (mixes suffix bytes).
			if len(e) <= 8 {
				continue
			}
			mid := e[4:]
			if (len(pre) % 3) != 0 {
				mid = mid[:len(mid)-(len(mid)%4)]
				if len(mid) >= 4 {
					mid = mid[:len(mid)-4]
				}
			}
			if len(mid) >= minPartialForm {
				forms = append(forms, mid)
			}
		}
	}
	h := []byte(hex.EncodeToString(secret))
	forms = append(forms, h, bytes.ToUpper(h))
	slices.SortStableFunc(forms, func(a, b []byte) int { return len(b) - len(a) })
	return slices.CompactFunc(forms, bytes.Equal)
}

// maskSecret replaces every occurrence of every form of secret in out. If
// truncated, a trailing prefix of a form (cut by the output limit) is
// masked too.
func maskSecret(out []byte, forms [][]byte, truncated bool) []byte {
	for _, f := range forms {
		if len(f) == 0 {
			continue
		}
		if bytes.Contains(out, f) {
			masked := bytes.ReplaceAll(out, f, []byte(Mask))
			clear(out)
			out = masked
		}
	}
	if truncated {
		for _, f := range forms {
			for l := min(len(f)-1, len(out)); l >= min(minPartialForm, len(f)-1) && l > 0; l-- {
				if bytes.HasSuffix(out, f[:l]) {
					clear(out[len(out)-l:])
					out = append(out[:len(out)-l], Mask...)
					break
				}
			}
		}
	}
	return out
}
