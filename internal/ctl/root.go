package ctl

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
	"github.com/calyx-net/calyx/internal/ipam"
	"github.com/calyx-net/calyx/internal/selector"
)

// Options is what the process hands calyxctl: its streams, environment and
// version. Tests fill it with their own.
type Options struct {
	In       io.Reader
	Out, Err io.Writer
	Getenv   func(string) string
	Version  string
	// ReadFile reads the config file; nil means the real file system.
	ReadFile func(string) ([]byte, error)
}

// store is the part of the datastore calyxctl uses.
type store interface {
	Get(ctx context.Context, kind api.KindInfo, name string) (api.Resource, error)
	List(ctx context.Context, kind api.KindInfo, sel *selector.Selector) ([]api.Resource, int64, error)
	Update(ctx context.Context, r api.Resource) (api.Resource, error)
	Batch(ctx context.Context, ops []datastore.Op) ([]api.Resource, error)
	ipam.Store // raw reads and compare-and-swap for calyxctl ipam
}

var _ store = (*datastore.Client)(nil)

// cli carries the shared state of one calyxctl invocation.
type cli struct {
	opts  Options
	conn  connFlags
	debug bool
	// connect opens the datastore; tests may replace it.
	connect func(ctx context.Context) (store, func(), error)
}

// NewCommand returns calyxctl's command tree.
func NewCommand(opts Options) *cobra.Command {
	if opts.ReadFile == nil {
		opts.ReadFile = osReadFile
	}
	c := &cli{opts: opts}
	c.connect = c.dial
	root := &cobra.Command{
		Use:   "calyxctl",
		Short: "Manage Calyx resources, IPAM and nodes",
		Long: `calyxctl manages the Calyx resources stored in etcd.

Datastore settings come from flags, then CALYX_ETCD_ENDPOINTS, CALYX_ETCD_CA_FILE,
CALYX_ETCD_CERT_FILE and CALYX_ETCD_KEY_FILE, then ` + DefaultConfigFile + `;
with none of them, calyxctl uses the embedded etcd of a local calyx-node
(https://127.0.0.1:2379 with the client certificate in ` + DefaultPKIDir + `,
readable by root only).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(opts.In)
	root.SetOut(opts.Out)
	root.SetErr(opts.Err)
	pf := root.PersistentFlags()
	pf.StringVarP(&c.conn.configFile, "config", "c", "", "settings file (default "+DefaultConfigFile+" if it exists)")
	pf.StringVar(&c.conn.Endpoints, "etcd-endpoints", "", "comma-separated etcd endpoints (env CALYX_ETCD_ENDPOINTS)")
	pf.StringVar(&c.conn.CAFile, "etcd-ca-file", "", "CA certificate for etcd TLS (env CALYX_ETCD_CA_FILE)")
	pf.StringVar(&c.conn.CertFile, "etcd-cert-file", "", "client certificate for etcd TLS (env CALYX_ETCD_CERT_FILE)")
	pf.StringVar(&c.conn.KeyFile, "etcd-key-file", "", "client key for etcd TLS (env CALYX_ETCD_KEY_FILE)")
	pf.BoolVar(&c.debug, "debug", false, "log datastore activity to stderr")
	root.AddCommand(
		c.writeCommand(writeCreate),
		c.writeCommand(writeApply),
		c.writeCommand(writeReplace),
		c.deleteCommand(),
		c.getCommand(),
		c.labelCommand(),
		c.ipamCommand(),
		c.policyCommand(),
		c.nodeCommand(),
		c.versionCommand(),
	)
	return root
}

// dial connects to the datastore named by the resolved settings.
func (c *cli) dial(ctx context.Context) (store, func(), error) {
	cfg, err := resolveConfig(c.conn, c.opts.Getenv, c.opts.ReadFile)
	if err != nil {
		return nil, nil, err
	}
	level := slog.LevelWarn
	if c.debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(c.opts.Err, &slog.HandlerOptions{Level: level}))
	cl, err := datastore.New(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	return cl, func() { _ = cl.Close() }, nil
}

// withStore runs fn with a connected datastore and a bounded context.
func (c *cli) withStore(cmd *cobra.Command, fn func(ctx context.Context, s store) error) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
	defer cancel()
	s, closeFn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	return fn(ctx, s)
}

// lookupKind resolves a KIND argument or says which kinds exist.
func lookupKind(name string) (api.KindInfo, error) {
	k, ok := api.LookupKind(name)
	if !ok {
		return k, fmt.Errorf("unknown resource kind %q; expected one of %v (singular, plural or short names, any case)", name, api.KindNames())
	}
	return k, nil
}
