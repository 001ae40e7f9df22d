package keychain

import (
	"fmt"
	"strconv"
)

func fmtSprintf(f string, v any) string { return fmt.Sprintf(f, v) }
func itoa(n int) string                 { return strconv.Itoa(n) }
