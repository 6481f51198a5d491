import { metered } from "@/lib/usage";

export const POST = metered("POST /api/scores", async (req: Request) => {
  const body = (await req.json().catch(() => null)) as { game?: unknown; score?: unknown } | null;
  if (typeof body?.game !== "string" || typeof body.score !== "number") {
    return Response.json({ title: "Bad Request", status: 400, detail: "send {\"game\": string, \"score\": number}" }, { status: 400 });
  }
  return Response.json({ game: body.game, score: body.score, rank: 1 + (Math.floor(body.score) % 100) }, { status: 201 });
});
