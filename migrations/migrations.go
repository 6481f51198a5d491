// Package migrations embeds the numbered SQL files that define the schema, so
// that tests, the local stack and deployments all apply the same files.
package migrations

import "embed"

// FS holds every migration, named NNNNN_description.sql and applied in
// lexical order by goose. schema.sql, the dump of the schema they make
// (make schema), is for reading and is not among them.
//
//go:embed [0-9]*.sql
var FS embed.FS
