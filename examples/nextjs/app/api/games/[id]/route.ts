import { metered } from "@/lib/usage";
import { games } from "@/lib/games";

export const GET = metered("GET /api/games/{id}", async (_req: Request, ctx: { params: Promise<{ id: string }> }) => {
  const { id } = await ctx.params;
  const game = games.find((g) => g.id === id);
  if (!game) {
    return Response.json({ type: "urn:example:not_found", title: "Not Found", status: 404, detail: `no game ${id}` }, { status: 404 });
  }
  return Response.json(game);
});
