export const games = [
  { id: "1", name: "Asteroids", players: 1 },
  { id: "2", name: "Pong", players: 2 },
  { id: "3", name: "Tetris", players: 1 },
];
