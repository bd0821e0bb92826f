package seed

// The fixed material the demo data set is drawn from. Names, addresses and venues are invented but
// plausible; every email is firstname.lastname@example.com, so names are kept to ASCII.

// city is one city of the data set, with the time zone its events' local hours are given in and
// the standard UTC offset used when the zone database is not available.
type city struct {
	name   string
	zone   string
	offset int // seconds east of UTC, standard time
}

var cities = []city{
	{"Lisbon", "Europe/Lisbon", 0},
	{"Berlin", "Europe/Berlin", 3600},
	{"Amsterdam", "Europe/Amsterdam", 3600},
	{"Barcelona", "Europe/Madrid", 3600},
	{"Copenhagen", "Europe/Copenhagen", 3600},
	{"Vienna", "Europe/Vienna", 3600},
}

// person is one demo user; city is set for organizers, who run the venues of that city.
type person struct {
	first, last string
	city        string
}

// organizers come first; the rest are plain users.
var organizers = []person{
	{"Sofia", "Almeida", "Lisbon"},
	{"Jonas", "Becker", "Berlin"},
	{"Eva", "Jansen", "Amsterdam"},
	{"Marta", "Puig", "Barcelona"},
	{"Mads", "Nielsen", "Copenhagen"},
	{"Lena", "Huber", "Vienna"},
}

var attendees = []person{
	{first: "Lucas", last: "Martin"},
	{first: "Emma", last: "Schneider"},
	{first: "Noah", last: "Visser"},
	{first: "Chloe", last: "Dubois"},
	{first: "Mateo", last: "Garcia"},
	{first: "Ines", last: "Costa"},
	{first: "Oliver", last: "Hansen"},
	{first: "Clara", last: "Weber"},
	{first: "Daniel", last: "Kowalski"},
	{first: "Anna", last: "Rossi"},
	{first: "Tom", last: "Bakker"},
	{first: "Julia", last: "Fischer"},
	{first: "Leo", last: "Moreau"},
	{first: "Sara", last: "Lindqvist"},
}

// Venue kinds say which events a venue suits.
const (
	kindHall    = "hall"    // large concerts, conferences, markets
	kindClub    = "club"    // small concerts, comedy, quizzes
	kindCowork  = "cowork"  // meetups and tech workshops
	kindTalks   = "talks"   // panels and lectures
	kindGallery = "gallery" // openings and art workshops
	kindPark    = "park"    // outdoor events
	kindCinema  = "cinema"  // screenings
	kindKitchen = "kitchen" // cooking classes and tastings
	kindStudio  = "studio"  // small hands-on classes, yoga
	kindSports  = "sports"  // indoor sports
	kindNone    = ""        // online or a meeting point: no venue
)

type venueSpec struct {
	name, address, city string
	capacity            int // 0: unknown
	kinds               []string
}

var venueSpecs = []venueSpec{
	{"Armazem 16", "Rua Rodrigues de Faria 103", "Lisbon", 450, []string{kindHall, kindTalks}},
	{"Cine Tejo", "Rua do Loreto 15", "Lisbon", 180, []string{kindCinema, kindTalks}},
	{"Hub Alcantara", "Rua da Cozinha Economica 30", "Lisbon", 90, []string{kindCowork, kindStudio}},
	{"Spreehalle", "Holzmarktstrasse 25", "Berlin", 2000, []string{kindHall}},
	{"Werkstatt Kreuzberg", "Oranienstrasse 183", "Berlin", 60, []string{kindStudio, kindCowork}},
	{"Galerie Nordlicht", "Auguststrasse 68", "Berlin", 120, []string{kindGallery, kindTalks}},
	{"Tempelhofer Feld, Oderstrasse entrance", "Oderstrasse 1", "Berlin", 0, []string{kindPark}},
	{"De Kleine Zaal", "Prinsengracht 412", "Amsterdam", 150, []string{kindClub}},
	{"Noordwerf Kitchen Lab", "NDSM-Plein 28", "Amsterdam", 30, []string{kindKitchen, kindStudio}},
	{"Filmhuis Oost", "Linnaeusstraat 89", "Amsterdam", 240, []string{kindCinema}},
	{"Sala Poblenou", "Carrer de Pere IV 58", "Barcelona", 700, []string{kindHall, kindClub}},
	{"Espai Gracia", "Carrer de Verdi 32", "Barcelona", 80, []string{kindCowork, kindTalks, kindGallery}},
	{"Parc de la Ciutadella, Cascada lawn", "Passeig de Picasso 21", "Barcelona", 0, []string{kindPark}},
	{"Kodbyen Food Hall", "Flaesketorvet 50", "Copenhagen", 300, []string{kindKitchen, kindClub}},
	{"Nordhavn Sports Centre", "Sandkaj 12", "Copenhagen", 400, []string{kindSports}},
	{"Salon am Karlsplatz", "Karlsplatz 5", "Vienna", 220, []string{kindClub, kindTalks}},
	{"Atelier Neubau", "Neubaugasse 44", "Vienna", 40, []string{kindGallery, kindStudio}},
}

// eventSpec is one event of the data set. {city} in the title is replaced by the venue's city.
type eventSpec struct {
	title, description string
	tags               []string
	kind               string
	hour, minute       int  // local start time
	hours              int  // duration, 1 to 8
	small              bool // a hands-on class for 5 to 15 people
	maxCap             int  // the most people it would draw; 0: as many as the venue holds
}

var eventSpecs = []eventSpec{
	// Large concerts, conferences and markets.
	{"Northern Lights: Synthwave Live", "Three synthwave acts on one stage, with a light show built for the room. Doors open half an hour before the first set.", []string{"music"}, kindHall, 20, 0, 4, false, 0},
	{"Indie Spring Showcase", "Six up-and-coming indie bands play twenty-minute sets. Vote for your favourite at the bar; the winner headlines our summer edition.", []string{"music"}, kindHall, 19, 0, 5, false, 0},
	{"{city} Tech Summit", "A day of talks on cloud infrastructure, data and developer experience from engineers who run systems in production. Lunch and coffee are included.", []string{"tech", "talks"}, kindHall, 9, 0, 8, false, 600},
	{"Vinyl & Street Food Market", "Record dealers from across the region, a dozen food stalls and DJs playing only vinyl. Children under twelve get in free.", []string{"food", "music", "family"}, kindHall, 11, 0, 6, false, 0},
	{"Electronic All-Dayer", "An afternoon-to-night electronic session with two rooms and the resident DJs. Come early, leave late.", []string{"music"}, kindHall, 16, 0, 7, false, 0},
	{"Spring Tango Milonga", "An evening of social tango with a live orquesta tipica. A beginners' class runs for the first hour.", []string{"music", "workshop"}, kindHall, 19, 30, 4, false, 250},

	// Small concerts, comedy and quizzes.
	{"Late Night Jazz Session", "The house trio plays two sets, then the stage opens for a jam. Bring your instrument if you want to sit in.", []string{"music"}, kindClub, 21, 0, 3, false, 120},
	{"Open Mic: Songwriters' Circle", "Sign up at the door for a ten-minute slot. Original songs only; an acoustic backline is provided.", []string{"music", "meetup"}, kindClub, 19, 30, 3, false, 80},
	{"Acoustic Sessions: Folk from the North", "An intimate evening with two Nordic folk duos. Seated concert, no amplification.", []string{"music"}, kindClub, 20, 0, 2, false, 120},
	{"Stand-up Comedy in English", "Five comedians, one host and a room full of expats and locals. Some jokes will be about the trams.", []string{"art", "talks"}, kindClub, 20, 0, 2, false, 200},
	{"Quiz Night: Music Edition", "Teams of up to six, five rounds and one very competitive host. Prizes for the top three tables.", []string{"music", "meetup"}, kindClub, 19, 0, 3, false, 100},

	// Meetups and tech workshops.
	{"Go Meetup: Concurrency in Practice", "Two talks on structuring concurrent Go services, followed by pizza and lightning talks. Beginners are welcome.", []string{"tech", "meetup", "talks"}, kindCowork, 18, 30, 3, false, 80},
	{"Intro to Rust Workshop", "A hands-on day that goes from ownership and borrowing to a small command-line tool. Bring a laptop with Rust installed.", []string{"tech", "workshop"}, kindCowork, 10, 0, 6, true, 0},
	{"Product Design Critique Night", "Bring a screen you are working on and get honest, friendly feedback from other designers.", []string{"tech", "meetup"}, kindCowork, 18, 30, 2, false, 30},
	{"Startup Pitch Practice", "Founders pitch for five minutes and take ten minutes of questions from a panel of angel investors. The audience is welcome to ask too.", []string{"tech", "talks", "meetup"}, kindCowork, 18, 0, 3, false, 100},
	{"Women in Data Breakfast", "Coffee, pastries and a short talk on building data teams, then open networking.", []string{"tech", "meetup"}, kindCowork, 8, 30, 2, false, 50},
	{"Kubernetes from Scratch", "Build a cluster, deploy a service and break it on purpose, all in one day. Some command-line experience is expected.", []string{"tech", "workshop"}, kindCowork, 9, 30, 7, true, 0},
	{"Python Data Visualisation Workshop", "From a messy CSV to clear charts with pandas and matplotlib. Laptops required; notebooks are shared beforehand.", []string{"tech", "workshop"}, kindCowork, 10, 0, 6, true, 0},
	{"Board Game Night", "Over a hundred games on the shelves and volunteers who explain the rules. Drop in alone or bring a team.", []string{"meetup", "family"}, kindCowork, 18, 30, 4, false, 60},

	// Panels and lectures.
	{"The Future of Cities: Panel Discussion", "Urban planners, a mayor's advisor and a cycling activist on what the next twenty years hold for European cities.", []string{"talks"}, kindTalks, 19, 0, 2, false, 300},
	{"Science Slam", "Young researchers explain their work in ten minutes each, and the audience picks the winner.", []string{"talks"}, kindTalks, 20, 0, 2, false, 300},
	{"Climate Tech Evening", "Three founders show what they are building to cut emissions, followed by a discussion on what it takes to scale.", []string{"tech", "talks"}, kindTalks, 18, 30, 3, false, 150},
	{"Author Talk: Writing the City", "A novelist reads from her new book about {city} and talks about turning streets into characters. Signed copies are on sale.", []string{"talks", "art"}, kindTalks, 19, 0, 2, false, 120},
	{"{city} in Ten Objects", "A local historian tells the story of {city} through ten everyday objects. Suitable for curious teenagers and up.", []string{"talks", "family"}, kindTalks, 18, 0, 2, false, 150},

	// Openings and art workshops.
	{"Opening: New Voices in Photography", "The opening night of a group show of eight photographers under thirty. The curator gives a short talk at eight.", []string{"art"}, kindGallery, 19, 0, 3, false, 150},
	{"Life Drawing Evening", "A relaxed, untutored session with a professional model. Paper and charcoal are provided.", []string{"art", "workshop"}, kindGallery, 19, 0, 2, true, 0},
	{"Curator's Tour: Modernist Prints", "A one-hour walk through the print collection with the curator, with time for questions.", []string{"art", "talks"}, kindGallery, 11, 0, 1, false, 25},
	{"Zine-Making Afternoon", "Cut, paste, photocopy and staple your own zine. Materials are provided and children are welcome with an adult.", []string{"art", "workshop", "family"}, kindGallery, 14, 0, 3, true, 0},
	{"Ceramics for Beginners", "Learn to centre clay and throw a simple bowl on the wheel. Your pieces are fired and ready to collect two weeks later.", []string{"art", "workshop"}, kindGallery, 10, 0, 3, true, 0},

	// Outdoors.
	{"Morning Park Run", "An untimed, friendly five-kilometre loop for every pace. Meet at the main entrance; there is water at the finish.", []string{"sports", "outdoor"}, kindPark, 9, 0, 1, false, 300},
	{"Sunset Yoga in the Park", "An all-levels flow as the sun goes down. Bring a mat and a layer for afterwards.", []string{"wellness", "outdoor"}, kindPark, 19, 0, 1, false, 60},
	{"Family Kite Day", "Build a kite in the workshop tent, then fly it. Kites, string and snacks are included.", []string{"family", "outdoor"}, kindPark, 11, 0, 4, false, 300},
	{"Outdoor Cinema: Classics Under the Stars", "A restored classic on the big inflatable screen. Bring a blanket; popcorn is on us.", []string{"film", "outdoor"}, kindPark, 21, 0, 3, false, 400},
	{"Community Picnic & Board Games", "Bring something to share and we bring the games. Everyone is welcome, including dogs on a lead.", []string{"family", "meetup", "outdoor"}, kindPark, 12, 0, 4, false, 200},
	{"Birdwatching for Beginners", "A gentle guided walk with a local ornithologist. Binoculars are available to borrow.", []string{"outdoor", "family"}, kindPark, 7, 30, 2, true, 0},

	// Screenings.
	{"Documentary Night: Oceans", "A screening of a new documentary on deep-sea life, followed by a Q&A with the director.", []string{"film", "talks"}, kindCinema, 19, 30, 3, false, 200},
	{"Short Film Festival: Audience Award", "Twelve short films from European film schools. Your vote decides the audience award.", []string{"film"}, kindCinema, 18, 0, 4, false, 0},
	{"Silent Film with Live Piano", "A silent comedy classic with a pianist improvising the score live.", []string{"film", "music"}, kindCinema, 20, 0, 2, false, 200},
	{"Kids' Animation Matinee", "Award-winning animated shorts for children aged four and up. Parents get coffee.", []string{"film", "family"}, kindCinema, 11, 0, 2, false, 0},
	{"Cult Classics Double Bill", "Two cult films back to back with an interval and a themed cocktail.", []string{"film"}, kindCinema, 20, 0, 5, false, 0},

	// Cooking classes and tastings.
	{"Fresh Pasta Workshop", "Learn to make tagliatelle and ravioli by hand, then eat what you made with a glass of wine.", []string{"food", "workshop"}, kindKitchen, 18, 0, 3, true, 0},
	{"Sourdough Bread Masterclass", "Feed a starter, shape a loaf and take home your own bread and a jar of starter.", []string{"food", "workshop"}, kindKitchen, 10, 0, 4, true, 0},
	{"Natural Wine Tasting", "Six natural wines from small producers, introduced by the sommelier, with cheese from a local dairy.", []string{"food"}, kindKitchen, 19, 0, 2, true, 0},
	{"Street Food Evening", "Food trucks, a DJ and long tables. Pay per dish at the stalls.", []string{"food", "music"}, kindHall, 17, 0, 6, false, 800},
	{"Plant-Based Cooking Night", "Cook a three-course vegan dinner with a chef who used to run a steakhouse.", []string{"food", "workshop", "wellness"}, kindKitchen, 18, 30, 3, true, 0},
	{"Nordic Fermentation Basics", "Kimchi, sauerkraut and kombucha: the science and the practice. You take home three jars.", []string{"food", "workshop"}, kindKitchen, 14, 0, 3, true, 0},

	// Small hands-on classes.
	{"Morning Vinyasa Flow", "An energising hour of vinyasa yoga before work. Mats are provided.", []string{"wellness"}, kindStudio, 8, 0, 1, true, 0},
	{"Mindfulness for Busy People", "Short, practical techniques you can use at your desk, and a guided meditation to finish.", []string{"wellness", "talks"}, kindStudio, 18, 30, 2, false, 30},
	{"Screen Printing Workshop", "Design and print your own tote bag in two colours. No experience needed.", []string{"art", "workshop"}, kindStudio, 13, 0, 4, true, 0},
	{"Beginner's Guitar Workshop", "Your first three chords and your first song in two hours. Loan guitars are available.", []string{"music", "workshop"}, kindStudio, 18, 0, 2, true, 0},
	{"Breathwork & Sound Bath", "A guided breathwork session followed by a sound bath with gongs and singing bowls.", []string{"wellness"}, kindStudio, 19, 30, 2, true, 0},
	{"Choir for Everyone", "No auditions and no sheet music: learn a song in three parts by ear in one evening.", []string{"music", "wellness"}, kindStudio, 19, 0, 2, false, 60},

	// Indoor sports.
	{"5-a-side Football Tournament", "Register as a player and we put you in a mixed team. Matches are twelve minutes each; finals in the afternoon.", []string{"sports"}, kindSports, 10, 0, 6, false, 120},
	{"Intro to Bouldering", "A coach shows you the basics of footwork and falling safely. Shoes are included.", []string{"sports", "workshop"}, kindSports, 18, 0, 2, true, 0},
	{"Volleyball Social Night", "A relaxed league night: mixed teams, short games and drinks afterwards.", []string{"sports", "meetup"}, kindSports, 19, 0, 2, false, 48},
	{"Table Tennis Open", "A friendly open tournament with categories for juniors, adults and veterans.", []string{"sports", "family"}, kindSports, 10, 0, 5, false, 96},

	// No venue: online, or a meeting point shared with registrants.
	{"Online: Accessibility Testing 101", "A live online session on testing web apps with a screen reader and the keyboard only. The link is sent to registered attendees the day before.", []string{"tech", "workshop", "talks"}, kindNone, 17, 0, 2, false, 100},
	{"Remote Writers' Co-Working", "Three focused writing sprints with short breaks, on video. Cameras on, microphones off.", []string{"meetup", "art"}, kindNone, 9, 0, 3, false, 30},
	{"Bike Tour: Hidden Courtyards", "A slow ride through courtyards most locals never see. The meeting point is shared with registered riders.", []string{"outdoor", "sports"}, kindNone, 10, 0, 3, true, 0},
	{"Virtual Book Club: Translated Fiction", "This month we discuss a Portuguese novel in English translation. Join by video; the link comes by email.", []string{"talks", "meetup"}, kindNone, 19, 0, 1, false, 25},
}

var cancelReasons = []string{
	"The headliner is ill and the performance cannot go ahead. We are sorry for the disappointment.",
	"The venue is closed for urgent repairs. We are looking for a new date.",
	"Not enough people signed up to run it this time; we hope to try again in the autumn.",
	"The speaker's flight was cancelled. We will announce a new date soon.",
}
