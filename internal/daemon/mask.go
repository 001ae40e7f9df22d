package daemon

import "github.com/agentkeys/agentkeys/internal/mask"

// Mask is what replaces a secret in command output (internal/mask).
const Mask = mask.Mask

// The masker lives in internal/mask, shared with `agentkeys run`.
func secretForms(secret []byte) []mask.Form { return mask.Forms(secret) }
func clearForms(forms []mask.Form)          { mask.Clear(forms) }
func maskSecret(out []byte, forms []mask.Form, truncated bool) []byte {
	return mask.Secret(out, forms, truncated)
}
