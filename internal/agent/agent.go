package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"regexp"

	"github.com/calyx-net/calyx/internal/api"
	"github.com/calyx-net/calyx/internal/datastore"
)

// DefaultDataDir is where calyx-node keeps its state, the embedded etcd's
// data among it (under etcd/).
const DefaultDataDir = "/var/lib/calyx"

// Config is calyx-node's settings. The zero value of every optional field
// is a sensible default.
type Config struct {
	// NodeName names this host's Node resource. Required.
	NodeName string
	// NodeIPv4 is the host's address with prefix, e.g. 10.0.0.5/24;
	// recorded as the Node's spec.bgp.ipv4Address when set.
	NodeIPv4 string
	// ASNumber is this node's BGP AS number; empty means the cluster's.
	ASNumber string
	// Etcd names an external etcd. With no endpoints, calyx-node runs an
	// embedded single-member etcd under DataDir.
	Etcd datastore.Config
	// DataDir holds calyx-node's state; default DefaultDataDir.
	DataDir string
	// EmbeddedClientURL and EmbeddedPeerURL are where the embedded etcd
	// listens; defaults http://127.0.0.1:2379 and http://127.0.0.1:2380.
	EmbeddedClientURL, EmbeddedPeerURL string
	// Ready, if set, is called once the node is registered.
	Ready func()
}

var nodeNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// validate checks the settings and fills defaults.
func (c *Config) validate() error {
	if c.NodeName == "" {
		return errors.New("--name: the node name must be set")
	}
	if len(c.NodeName) > 253 || !nodeNameRE.MatchString(c.NodeName) {
		return fmt.Errorf("--name %q: expected a lower-case DNS name (letters, digits, '-' and '.')", c.NodeName)
	}
	if c.NodeIPv4 != "" {
		p, err := netip.ParsePrefix(c.NodeIPv4)
		if err != nil || !p.Addr().Is4() {
			return fmt.Errorf("--ip %q: expected an IPv4 address with prefix length, e.g. 10.0.0.5/24", c.NodeIPv4)
		}
	}
	if c.ASNumber != "" {
		if _, err := api.ParseASNumber(c.ASNumber); err != nil {
			return fmt.Errorf("--as: %w", err)
		}
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	return nil
}

// Run runs calyx-node until ctx ends. It returns nil after a normal stop.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	etcdCfg := cfg.Etcd
	if len(etcdCfg.Endpoints) == 0 {
		emb, err := datastore.StartEmbedded(ctx, datastore.EmbeddedConfig{
			DataDir:   filepath.Join(cfg.DataDir, "etcd"),
			Name:      cfg.NodeName,
			ClientURL: cfg.EmbeddedClientURL,
			PeerURL:   cfg.EmbeddedPeerURL,
			Log:       log,
		})
		if err != nil {
			return fmt.Errorf("starting embedded etcd: %w", err)
		}
		defer func() {
			if err := emb.Close(); err != nil {
				log.Warn("stopping embedded etcd", "err", err)
			}
		}()
		etcdCfg.Endpoints = emb.Endpoints()
		log.Info("embedded etcd started", "endpoints", etcdCfg.Endpoints, "dataDir", filepath.Join(cfg.DataDir, "etcd"))
	}
	store, err := datastore.New(ctx, etcdCfg, log.With("component", "datastore"))
	if err != nil {
		return err
	}
	defer store.Close()

	node, err := registerNode(ctx, store, cfg)
	if err != nil {
		return err
	}
	log.Info("node registered", "node", node.Metadata.Name, "resourceVersion", node.Metadata.ResourceVersion)
	if cfg.Ready != nil {
		cfg.Ready()
	}
	<-ctx.Done()
	log.Info("calyx-node stopping")
	return nil
}

// nodeStore is the part of the datastore node registration uses.
type nodeStore interface {
	Get(ctx context.Context, kind api.KindInfo, name string) (api.Resource, error)
	Create(ctx context.Context, r api.Resource) (api.Resource, error)
	Update(ctx context.Context, r api.Resource) (api.Resource, error)
}

// registerNode creates this host's Node, or updates the fields calyx-node
// owns on an existing one, keeping whatever else an operator set there.
func registerNode(ctx context.Context, s nodeStore, cfg Config) (*api.Node, error) {
	kind, _ := api.LookupKind(api.KindNode)
	const attempts = 10
	for i := 0; ; i++ {
		cur, err := s.Get(ctx, kind, cfg.NodeName)
		var node *api.Node
		switch {
		case datastore.IsNotFound(err):
			node = kind.New().(*api.Node)
			node.Metadata.Name = cfg.NodeName
		case err != nil:
			return nil, fmt.Errorf("reading node %q: %w", cfg.NodeName, err)
		default:
			node = cur.(*api.Node)
		}
		desired := node.DeepCopyResource().(*api.Node)
		applyNodeFields(desired, cfg)
		if cur != nil && equalJSON(cur, desired) {
			return node, nil
		}
		desired.SetDefaults()
		if err := desired.Validate(); err != nil {
			return nil, fmt.Errorf("registering node %q: %w", cfg.NodeName, err)
		}
		var out api.Resource
		if cur == nil {
			out, err = s.Create(ctx, desired)
		} else {
			out, err = s.Update(ctx, desired)
		}
		if (datastore.IsConflict(err) || datastore.IsAlreadyExists(err)) && i < attempts {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("registering node %q: %w", cfg.NodeName, err)
		}
		return out.(*api.Node), nil
	}
}

// applyNodeFields sets the fields of a Node that calyx-node's flags own.
func applyNodeFields(n *api.Node, cfg Config) {
	if cfg.NodeIPv4 == "" && cfg.ASNumber == "" {
		return
	}
	if n.Spec.BGP == nil {
		n.Spec.BGP = &api.NodeBGPSpec{}
	}
	if cfg.NodeIPv4 != "" {
		n.Spec.BGP.IPv4Address = cfg.NodeIPv4
	}
	if cfg.ASNumber != "" {
		asn, _ := api.ParseASNumber(cfg.ASNumber) // checked in validate
		n.Spec.BGP.ASNumber = &asn
	}
}

func equalJSON(a, b api.Resource) bool {
	ab, err1 := api.MarshalStored(a)
	bb, err2 := api.MarshalStored(b)
	return err1 == nil && err2 == nil && string(ab) == string(bb)
}
