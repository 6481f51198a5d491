// Command migrate applies the embedded schema migrations to a PostgreSQL
// database. Running it again with nothing pending changes nothing.
//
//	migrate [-database-url URL]
//
// The URL defaults to $DATABASE_URL.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"

	"github.com/nexus/usage/shared/postgres"
)

func main() {
	url := flag.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL connection URL")
	flag.Parse()
	if *url == "" {
		fmt.Fprintln(os.Stderr, "migrate: no database: set DATABASE_URL or pass -database-url")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	applied, err := postgres.Migrate(ctx, *url, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, "migrate:", err)
		os.Exit(1)
	}
	if len(applied) == 0 {
		fmt.Println("migrate: schema is up to date")
		return
	}
	fmt.Printf("migrate: applied %d migration(s), now at version %d\n", len(applied), applied[len(applied)-1])
}
