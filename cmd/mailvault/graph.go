package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/graph"
	"github.com/mailvault/mailvault/adapters/graphsim"
	"github.com/mailvault/mailvault/adapters/simtenant"
	"github.com/mailvault/mailvault/internal/connect"
)

// graphFlags are the Graph source's command-line settings.
type graphFlags struct {
	tenantID, clientID string
	secretFile         string
	secretEnv          string
	secretValue        string // refused: secrets never come as flag values
	mailboxes          []string
	archives           bool
	graphURL, betaURL  string
	tokenURL, caCert   string
	content            string
	pageSize           int
}

func (f *graphFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.tenantID, "tenant-id", "", "Entra tenant id (graph source)")
	fl.StringVar(&f.clientID, "client-id", "", "application (client) id of the app registration")
	fl.StringVar(&f.secretFile, "client-secret-file", "", "file holding the client secret")
	fl.StringVar(&f.secretEnv, "client-secret-env", "", "environment variable holding the client secret")
	fl.StringVar(&f.secretValue, "client-secret", "", "")
	_ = fl.MarkHidden("client-secret")
	fl.StringArrayVar(&f.mailboxes, "mailbox", nil, "back up only this mailbox (repeatable; graph: default every user with a mailbox; ews: the mailboxes to back up)")
	fl.BoolVar(&f.archives, "archives", false, "also back up each mailbox's archive, as ADDRESS (archive)")
	fl.StringVar(&f.graphURL, "graph-url", graph.DefaultGraphURL, "Graph v1.0 endpoint (sovereign clouds, the simulator)")
	fl.StringVar(&f.betaURL, "beta-url", "", "Graph beta endpoint (default derived from --graph-url)")
	fl.StringVar(&f.tokenURL, "token-url", "", "token endpoint (default https://login.microsoftonline.com/TENANT/oauth2/v2.0/token)")
	fl.StringVar(&f.caCert, "ca-cert", "", "extra CA certificate (PEM) to trust (Graph, the token endpoint, EWS)")
	fl.StringVar(&f.content, "graph-content", "auto", "content mode: auto|export|batch|get, or per kind: mail=export,calendar=batch,contacts=batch")
	fl.IntVar(&f.pageSize, "page-size", 500, "delta page size (Prefer: odata.maxpagesize, at most 500)")
}

// spec is the connection the flags describe, with its secret: a backup
// given by flags opens it as a named connection is opened.
func (f *graphFlags) spec() (connectionSpec, credential.Secret, error) {
	spec, err := f.settings()
	if err != nil {
		return spec, credential.Secret{}, err
	}
	secret, err := loadSecret("client secret", f.secretFile, f.secretEnv)
	if err != nil {
		return spec, secret, usageErr("%v", err)
	}
	return spec, secret, nil
}

// settings is the connection the flags describe, without its secret.
func (f *graphFlags) settings() (connectionSpec, error) {
	if f.secretValue != "" {
		return connectionSpec{}, usageErr("--client-secret is refused: a secret on the command line is visible to every local user; use --client-secret-file or --client-secret-env")
	}
	spec := connectionSpec{Type: "graph", TenantID: f.tenantID, ClientID: f.clientID, GraphURL: f.graphURL, BetaURL: f.betaURL, TokenURL: f.tokenURL,
		CACert: f.caCert, Content: f.content, PageSize: f.pageSize}
	if err := spec.Validate("--source graph"); err != nil {
		return spec, usageErr("%v", err)
	}
	if _, err := connect.ParseContent(f.content); err != nil {
		return spec, usageErr("%v", err)
	}
	return spec, nil
}

// givesSecret says whether the flags name a secret.
func (f *graphFlags) givesSecret() bool { return f.secretFile != "" || f.secretEnv != "" }

// startDemoGraph serves a tenant over HTTPS in process and returns a Graph
// source pointed at it.
func startDemoGraph(ctx context.Context, log zerolog.Logger, t *simtenant.Tenant, dir string) (*graph.Source, *graphsim.Running, error) {
	sim, err := graphsim.Start(t, graphsim.StartOptions{TLS: true, Dir: dir})
	if err != nil {
		return nil, nil, fmt.Errorf("start the Graph simulator: %w", err)
	}
	ep := sim.Endpoint
	src, err := connect.GraphSource(ctx, log, connect.GraphSettings{TenantID: ep.TenantID, ClientID: ep.ClientID, Secret: credential.New(ep.ClientSecret),
		GraphURL: ep.GraphURL, BetaURL: ep.BetaURL, TokenURL: ep.TokenURL, CACert: ep.CACert})
	if err != nil {
		sim.Close()
		return nil, nil, err
	}
	return src, sim, nil
}

// simFlags are what every `mailvault sim` server takes.
type simFlags struct {
	tenant, listen, dir string
	tls                 bool
}

func (f *simFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.tenant, "tenant", "", "tenant file (YAML)")
	cmd.Flags().StringVar(&f.listen, "listen", "127.0.0.1:0", "address to listen on")
	cmd.Flags().BoolVar(&f.tls, "tls", true, "serve HTTPS with a generated self-signed CA")
	cmd.Flags().StringVar(&f.dir, "dir", "", "directory for ca.pem (default a new temporary directory)")
}

// serveSim loads the tenant, starts a simulator, prints its endpoint as the
// one JSON line of the contract, and serves until interrupted.
func (f *simFlags) serve(cmd *cobra.Command, start func(*simtenant.Tenant) (endpoint any, stop func() error, err error)) error {
	if f.tenant == "" {
		return usageErr("--tenant FILE is required")
	}
	t, err := simtenant.Load(f.tenant)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	ep, stop, err := start(t)
	if err != nil {
		return &exitError{code: exitErrors, err: err}
	}
	defer stop()
	line, _ := json.Marshal(ep)
	fmt.Fprintln(cmd.OutOrStdout(), string(line))
	ctx, cancel := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	<-ctx.Done()
	return nil
}

func newSimCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "sim", Short: "Run a simulated server (graph, ews) for tests and trials"}
	var sf simFlags
	var tokenTTL time.Duration
	gcmd := &cobra.Command{
		Use:   "graph --tenant FILE",
		Short: "Serve a tenant file as Microsoft Graph (HTTPS, Entra token endpoint, throttling, faults)",
		Long: `Serve a tenant file as Microsoft Graph until interrupted. When ready it prints
one JSON line on stdout with graph_url, beta_url, token_url, tenant_id,
client_id, client_secret and ca_cert; other tools start the simulator this way.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return sf.serve(cmd, func(t *simtenant.Tenant) (any, func() error, error) {
				sim, err := graphsim.Start(t, graphsim.StartOptions{Options: graphsim.Options{TokenTTL: tokenTTL}, Listen: sf.listen, TLS: sf.tls, Dir: sf.dir})
				if err != nil {
					return nil, nil, err
				}
				return sim.Endpoint, sim.Close, nil
			})
		},
	}
	sf.register(gcmd)
	gcmd.Flags().DurationVar(&tokenTTL, "token-ttl", 3599*time.Second, "lifetime of issued tokens")
	cmd.AddCommand(gcmd, newSimEWSCmd())
	return cmd
}
