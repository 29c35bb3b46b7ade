export async function run(): Promise<number> { throw new Error('compare: not built yet'); }
