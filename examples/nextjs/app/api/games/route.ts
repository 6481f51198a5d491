import { metered } from "@/lib/usage";
import { games } from "@/lib/games";

export const GET = metered("GET /api/games", () => Response.json({ items: games }));
