package platform

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nexus/usage/shared/httpapi"
	"github.com/nexus/usage/shared/meter"
	"github.com/nexus/usage/shared/usage"
)

// FlakyEvery is how often GET /v1/flaky fails: its n-th call since the
// service started answers 503 when n is a multiple of FlakyEvery.
const FlakyEvery = 5

// Limits of a score.
const (
	maxPlayerBytes = 32
	maxScore       = 1_000_000_000
	topScores      = 10
	maxScoreBody   = 1 << 10
)

// Game is one game of the catalogue.
type Game struct {
	ID    int     `json:"id"`
	Title string  `json:"title"`
	Genre string  `json:"genre"`
	Top   []Score `json:"top_scores,omitempty"`
}

// Score is a submitted score.
type Score struct {
	ID     int64     `json:"id"`
	GameID int       `json:"game_id"`
	Player string    `json:"player"`
	Score  int64     `json:"score"`
	UserID string    `json:"user_id"`
	At     time.Time `json:"at"`
}

// catalogue is the sample data: the games, and each game's top scores
// (bounded: only the best topScores are kept).
type catalogue struct {
	games []Game
	now   func() time.Time

	mu     sync.Mutex
	top    map[int][]Score
	nextID int64
	flaky  atomic.Int64
}

func newCatalogue(now func() time.Time) *catalogue {
	return &catalogue{now: now, top: map[int][]Score{}, games: []Game{
		{ID: 1, Title: "Asteroid Miner", Genre: "arcade"},
		{ID: 2, Title: "Lighthouse Keeper", Genre: "puzzle"},
		{ID: 3, Title: "Orbital Courier", Genre: "racing"},
		{ID: 4, Title: "Moss & Stone", Genre: "strategy"},
		{ID: 5, Title: "Night Shift Chef", Genre: "simulation"},
	}}
}

// routes is the service's ServeMux: thin handlers over the catalogue. The
// metering wraps it whole; the patterns are the endpoints it reports.
func (c *catalogue) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/games", c.listGames)
	mux.HandleFunc("GET /v1/games/{id}", c.getGame)
	mux.HandleFunc("POST /v1/scores", c.postScore)
	mux.HandleFunc("GET /v1/flaky", c.flakyCall)
	return mux
}

func (c *catalogue) listGames(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"games": c.games})
}

func (c *catalogue) getGame(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		writeProblem(w, http.StatusBadRequest, usage.CodeInvalid, "id: must be a game number", "id")
		return
	}
	g, ok := c.game(id)
	if !ok {
		writeProblem(w, http.StatusNotFound, usage.CodeNotFound, fmt.Sprintf("no game %d", id), "")
		return
	}
	c.mu.Lock()
	g.Top = slices.Clone(c.top[id])
	c.mu.Unlock()
	writeJSON(w, http.StatusOK, g)
}

func (c *catalogue) postScore(w http.ResponseWriter, r *http.Request) {
	var in struct {
		GameID *int   `json:"game_id"`
		Player string `json:"player"`
		Score  *int64 `json:"score"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxScoreBody+1))
	switch {
	case err != nil:
		writeProblem(w, http.StatusBadRequest, usage.CodeInvalid, "body: could not be read", "body")
		return
	case len(body) > maxScoreBody:
		writeProblem(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body larger than %d bytes", maxScoreBody), "body")
		return
	case json.Unmarshal(body, &in) != nil:
		writeProblem(w, http.StatusBadRequest, usage.CodeInvalid, `body: must be a JSON object {"game_id", "player", "score"}`, "body")
		return
	}
	if msg, param := validScore(in.GameID, in.Player, in.Score); msg != "" {
		writeProblem(w, http.StatusBadRequest, usage.CodeInvalid, msg, param)
		return
	}
	if _, ok := c.game(*in.GameID); !ok {
		writeProblem(w, http.StatusNotFound, usage.CodeNotFound, fmt.Sprintf("no game %d", *in.GameID), "game_id")
		return
	}
	id, _ := meter.IdentityFrom(r.Context())
	writeJSON(w, http.StatusCreated, c.addScore(*in.GameID, in.Player, *in.Score, id.UserID))
}

// validScore returns what is wrong with a score's fields and the field, or
// "".
func validScore(game *int, player string, score *int64) (string, string) {
	switch {
	case game == nil:
		return "game_id: is required", "game_id"
	case player == "" || len(player) > maxPlayerBytes || !utf8.ValidString(player):
		return fmt.Sprintf("player: must be 1 to %d bytes of UTF-8", maxPlayerBytes), "player"
	case score == nil || *score < 0 || *score > maxScore:
		return fmt.Sprintf("score: must be between 0 and %d", maxScore), "score"
	}
	return "", ""
}

// flakyCall stands for a route whose upstream fails now and then.
func (c *catalogue) flakyCall(w http.ResponseWriter, r *http.Request) {
	if n := c.flaky.Add(1); n%FlakyEvery == 0 {
		writeProblem(w, http.StatusServiceUnavailable, usage.CodeUnavailable, "the leaderboard upstream did not answer; retry", "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "upstream": "leaderboard"})
}

func (c *catalogue) game(id int) (Game, bool) {
	for _, g := range c.games {
		if g.ID == id {
			return g, true
		}
	}
	return Game{}, false
}

// addScore stores a score and keeps the game's best topScores.
func (c *catalogue) addScore(game int, player string, score int64, userID string) Score {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	s := Score{ID: c.nextID, GameID: game, Player: player, Score: score, UserID: userID, At: c.now().UTC()}
	top := append(c.top[game], s)
	slices.SortStableFunc(top, func(a, b Score) int { return cmp.Compare(b.Score, a.Score) })
	if len(top) > topScores {
		top = top[:topScores]
	}
	c.top[game] = top
	return s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeResponse(w, httpapi.JSON(status, v))
}

// writeProblem answers the problem+json of the metering API's errors, so a
// client reads one error shape from the service and from the middleware.
func writeProblem(w http.ResponseWriter, status int, code, detail, param string) {
	p := httpapi.Problem{Type: httpapi.ProblemType(code), Title: http.StatusText(status), Status: status, Detail: detail, Param: param}
	if param != "" {
		p.InvalidParams = []httpapi.InvalidParam{{Name: param, Reason: detail}}
	}
	writeResponse(w, httpapi.ProblemResponse(p))
}

func writeResponse(w http.ResponseWriter, resp httpapi.Response) {
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.WriteString(w, resp.Body)
}
