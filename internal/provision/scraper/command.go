package scraper

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/agentkeys/agentkeys/internal/provision"
)

// maxConfig bounds the configuration read from stdin.
const maxConfig = 1 << 20

// NewCommand returns the hidden provision.ScraperSubcommand command the
// orchestrator spawns: it reads one ScraperConfig JSON document from
// stdin, writes events (JSON lines) to stdout and log lines to stderr,
// and exits 0 once it wrote a terminal event (whatever the outcome), 1
// only when it could not write one.
func NewCommand() *cobra.Command {
	return newCommand(Options{})
}

func newCommand(o Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:           provision.ScraperSubcommand,
		Short:         "Sign up for a service in a browser and report its API key (spawned by the provisioner)",
		Hidden:        true,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: false,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			em := provision.NewEmitter(cmd.OutOrStdout())
			cfg, err := readConfig(cmd.InOrStdin())
			if err != nil {
				newLogger(cmd.ErrOrStderr(), cfg.Service).printf("bad configuration: %v", err)
				if err := em.Emit(provision.Event{Type: provision.TypeError, Code: provision.CodeMissingConfig, Details: err.Error()}); err != nil {
					return fmt.Errorf("emit: %w", err)
				}
				return nil
			}
			return Run(ctx, cfg, o, em, cmd.ErrOrStderr())
		},
	}
	return cmd
}

// readConfig decodes exactly one ScraperConfig (size-limited, unknown
// fields rejected). Error messages never quote the input: it holds
// secrets.
func readConfig(r io.Reader) (provision.ScraperConfig, error) {
	var cfg provision.ScraperConfig
	b, err := io.ReadAll(io.LimitReader(r, maxConfig+1))
	if err != nil {
		return cfg, fmt.Errorf("read stdin: %w", err)
	}
	if len(b) > maxConfig {
		return cfg, fmt.Errorf("configuration larger than %d bytes", maxConfig)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return cfg, errors.New("no configuration on stdin")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return provision.ScraperConfig{}, fmt.Errorf("configuration is not valid JSON (offset %d)", se.Offset)
		case errors.As(err, &te):
			return provision.ScraperConfig{}, fmt.Errorf("configuration field %q has the wrong type", te.Field)
		}
		// Unknown-field errors name the field, not its value.
		return provision.ScraperConfig{}, fmt.Errorf("configuration: %v", err)
	}
	if dec.More() {
		return provision.ScraperConfig{}, errors.New("trailing data after the configuration")
	}
	return cfg, nil
}
